"""The default Supported Employment workflow, as data (TOML). Installed as se_flow.stages."""
