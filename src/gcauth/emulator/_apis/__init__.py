"""One module per emulated API.  Each module holds handlers (``def h(call: Call) -> Reply``)
and, when it has its own error shape, headers or pre-checks, its :class:`~.._routing.Api`.
The route table that wires paths to these handlers is :mod:`.._table`."""
