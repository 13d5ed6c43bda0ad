"""``python -m taskgraph_images`` runs the CLI."""

from __future__ import annotations

import sys

from taskgraph_images.cli import main

sys.exit(main())
