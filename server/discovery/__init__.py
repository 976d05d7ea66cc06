"""Discovery: find the certificates an organisation has on its network and on its disks.

Network: targets are expanded within a cap and an allow-list before any packet (targets), each
endpoint is probed with a few bounded handshakes (tls_probe, over starttls when the port asks for
it), and many endpoints are probed at once (endpoint_scan). Disk: file_scan walks paths without
leaving them and reads every certificate container it recognises (ca/inventory/containers.py).
run.py turns either into a scan recorded in the inventory; schedule.py runs configured scans
once per period across server processes; settings.py is the [discovery] config section.
"""
