"""Notices: deciding who must hear about which certificate, and never telling them twice.

What is due (an expiry threshold reached, a weak key, a revoked certificate still deployed) is
decided here from the inventory; each message goes into an outbox row whose key names the
certificate, the rule, the escalation level and the recipient, unique in the database, so two
server processes or a restart can never queue the same notice twice (CLM-02). The transports
that deliver the outbox (SMTP, webhooks) live in server/notify/.
"""
