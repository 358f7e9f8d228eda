"""PyTorch's `torch.utils` paths: `smolgrad.utils.data` is `smolgrad.data` (the same
module objects, submodules included, so classes and isinstance checks are shared)."""

import sys

from .. import data

# Register the alias and its submodules, so `import smolgrad.utils.data.sampler` finds
# the loaded module instead of loading its file a second time as a new module.
for _name, _module in list(sys.modules.items()):
    if _name == data.__name__ or _name.startswith(data.__name__ + "."):
        sys.modules[__name__ + ".data" + _name[len(data.__name__):]] = _module
del _name, _module
