import sys

from .runner import _child_main

sys.exit(_child_main())
