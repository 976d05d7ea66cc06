"""The management plane: the operator API and the dashboard, on the management listener."""
