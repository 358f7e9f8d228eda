"""`python -m benchmarks [--quick] [--filter S] [--device webgpu|numpy|all] [--repeat N] [--out PATH] [--no-torch] [--gpu-report [--small]]`"""

import sys

from .runner import main

sys.exit(main())
