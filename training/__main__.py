"""`python -m training` is the same entry point as the `mnist-suite` console script."""

from training.cli import main

raise SystemExit(main())
