"""`python -m mnist_suite` is the same entry point as the `mnist-suite` console script."""

from mnist_suite.cli import main

raise SystemExit(main())
