"""Tests of gcauth.emulator (raw HTTP clients only)."""
