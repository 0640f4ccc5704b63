"""The funder definitions se-flow ships, one TOML file each (read by `load_programmes`)."""
