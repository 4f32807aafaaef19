"""gcauth vs google-auth benchmarks: ``python -m benchmarks`` (see benchmarks/README.md).

The network guard is installed here, so it is in place before any benchmark module imports
gcauth or google-auth.
"""

from ._guard import install as _install

_install()
