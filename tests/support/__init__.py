"""What tests share: databases, live servers and peers, factories, and assertions.

Test modules import from here, never from one another; ``tests/conftest.py`` turns these into
fixtures.
"""
