"""`python -m controller`: the same entry point as the `releasectl` console script."""

from controller.app.cli import main

raise SystemExit(main())
