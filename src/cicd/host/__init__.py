"""What acts on one environment on one host.

The target, the deploy lock, blue/green slots, the haproxy front, the intent journal,
backups, the setup record and detached watchers.
"""
