"""What the pipeline tells people.

DORA figures and their page, the audit, Discord notifications, GitHub deployments and
commit statuses, and job summaries.
"""
