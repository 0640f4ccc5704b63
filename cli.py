"""Front door of the `se-flow` command when run from a checkout: `python cli.py --help`.

The installed `se-flow` script runs the same app, `se_flow.cli:app`.
"""

from se_flow.cli import main

if __name__ == "__main__":
    main()
