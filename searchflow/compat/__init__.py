"""Every private member of a library that SearchFlow uses lives here, one module per library.

A private attribute can change in any release without notice. Keeping each library's uses in one
module, with a test in ``tests/compat/`` that fails loudly when the library changes, turns an upgrade
that breaks one into a single failing test with the name of the module to fix, instead of a bug
somewhere in a stage.
"""
