import sys

from .runner import child_main

sys.exit(child_main())
