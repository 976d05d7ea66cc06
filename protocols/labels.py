"""Path label -> profile, the same way for every protocol that selects a profile by its URL.

EST has `/.well-known/est/<label>/...` (RFC 7030 §3.2.2), SCEP `/scep/<profile>`, CMP
`/.well-known/cmp/p/<profile>` (RFC 9811), ACME `/acme/<profile>/directory`. A label is
either mapped in the protocol's config section (``[est.labels] iot = "device"``) or is the
name of a profile itself; either way the profile must list the protocol among its
``protocols``. No label selects the protocol's default profile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ca.errors import ConfigError
from ca.profiles.model import Profile


class ProfileLabels:
    def __init__(
        self,
        protocol: str,
        profiles: Callable[[], Mapping[str, Profile]],
        mapping: Mapping[str, str],
        default: str | None,
    ) -> None:
        """``profiles`` is read on every lookup, so a profile reload (SIGHUP) is seen at once.
        Raises ConfigError at start-up for a mapping to a profile that does not allow the protocol."""
        self.protocol = protocol
        self._profiles = profiles
        self._mapping = dict(mapping)
        for label, name in self._mapping.items():
            if not self._allows(name):
                raise ConfigError(f"{protocol}.labels.{label}: profile {name!r} does not exist or allow {protocol}")
        self.default = default if default is not None and self._allows(default) else None

    def _allows(self, name: str) -> bool:
        profile = self._profiles().get(name)
        return profile is not None and self.protocol in profile.protocols

    def profile(self, label: str | None) -> str | None:
        """The profile a label selects, or None if it selects none (answer 404)."""
        if not label:
            return self.default
        name = self._mapping.get(label, label)
        return name if self._allows(name) else None

    def labels(self) -> list[str]:
        """Every label that selects a profile now: the mapped ones and each allowing profile's name."""
        own = {name for name, p in self._profiles().items() if self.protocol in p.protocols}
        return sorted(own | {label for label, name in self._mapping.items() if self._allows(name)})
