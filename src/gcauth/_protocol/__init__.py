"""Pure protocol code, one module per specification. No I/O, no clocks, no globals."""
