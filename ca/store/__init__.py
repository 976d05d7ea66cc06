"""The SQL store: typed tables, async repositories, migrations."""
