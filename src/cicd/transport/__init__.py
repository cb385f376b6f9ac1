"""How commands reach a host.

The runner (local or over SSH, one round trip per batch), SSH hardening, fan-out over
hosts and the fail points the fault tests inject.
"""
