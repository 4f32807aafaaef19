"""The test kit: one package for everything tests share.

* :mod:`tests.kit.creds` -- credential dicts and keys, canned replies, ``drive`` for flows,
  ``TokenSender`` (a socket-free token endpoint);
* :mod:`tests.kit.emu` -- a raw-HTTP toolkit for the emulator tests;
* :mod:`tests.kit.cli` -- running the CLI as a subprocess (also a plugin: ``client_file``,
  ``env`` fixtures);
* :mod:`tests.kit.network` -- a loopback port that refuses connections for the whole run;
* :mod:`tests.kit.google` -- loopback REST and gRPC stand-ins for Google APIs, for Google's
  own client libraries (also a plugin: ``block_google_auth_lookups``);
* :mod:`tests.kit.leak_guard` -- the secret-leak guard (a plugin).
"""
