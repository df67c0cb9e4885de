"""PostHog's channel type of a session, as a ClickHouse SQL expression.

The rules are PostHog's default channel rules (``posthog/hogql/database/schema/channel_type.py``),
applied to the inputs PostHog's sessions table (``sessions_v3``) gives them: the entry event's
``utm_source``, ``utm_medium``, ``utm_campaign``, ``$referring_domain``, whether it has a
``gclid`` and an ``fbclid``, and its ``gad_source``. In order, first match wins:

1. Cross Network: the campaign contains ``cross-network``.
2. Paid: the medium is cpc, cpm, cpv, cpa, ppc or retargeting or starts with ``paid``, or there is
   a gclid, or a gad_source. Then: the source's paid type in the domain table, else Paid
   Shopping for a shopping campaign, else the medium's paid type, else the referring domain's
   paid type, else Paid Search for gad_source 1, Paid Video for a video campaign, Paid Social for
   an fbclid, else Paid Unknown.
3. Direct: referring domain ``$direct``, no medium, no source (or a direct one), no fbclid.
4. Organic: the source's organic type, else Organic Shopping for a shopping campaign, else the
   medium's organic type, else the referring domain's organic type, else Organic Video for a
   video campaign, Push for a medium ending in ``push``, Organic Social for an fbclid, Direct for
   referring domain ``$direct``, Referral for any other referring domain, else Unknown.

Source, medium and campaign are lower-cased with ``''`` and ``'null'`` as absent (so is
gad_source, not lower-cased); the referring domain is taken as it is. A source or referring
domain is looked up as it is, then as its registrable domain (ClickHouse's
``cutToFirstSignificantSubdomain``, which PostHog's lookup uses); a medium only as it is.

The domain table is ``channel_definitions.json`` beside this module, built from PostHog's
``posthog/models/channel_type/channel_definitions.json`` by ``scripts/build_channel_definitions.py``
(it names the commit). It is embedded in the SQL as two literal arrays, so no dictionary has to
exist on the user's ClickHouse.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

DEFINITIONS_FILE = "channel_definitions.json"

# Every channel PostHog's default rules can give.
CHANNEL_TYPES = (
    "Cross Network",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Paid Shopping",
    "Paid Unknown",
    "Direct",
    "Organic Search",
    "Organic Social",
    "Organic Video",
    "Organic Shopping",
    "Push",
    "SMS",
    "Audio",
    "Email",
    "Affiliate",
    "Display",
    "Referral",
    "Unknown",
)

PAID_MEDIUMS = ("cpc", "cpm", "cpv", "cpa", "ppc", "retargeting")
DIRECT_SOURCES = ("(direct)", "direct", "$direct")
SHOPPING_CAMPAIGN = "^(.*(([^a-df-z]|^)shop|shopping).*)$"
VIDEO_CAMPAIGN = "^(.*video.*)$"


@dataclass(frozen=True)
class ChannelDefinitions:
    """PostHog's domain table: per kind ('source' or 'medium'), a name's paid and organic type."""

    origin: dict
    source: dict[str, tuple[str | None, str | None]]
    medium: dict[str, tuple[str | None, str | None]]


@cache
def load_definitions() -> ChannelDefinitions:
    text = resources.files(__package__).joinpath(DEFINITIONS_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    tables: dict[str, dict[str, tuple[str | None, str | None]]] = {"source": {}, "medium": {}}
    for domain, kind, _domain_type, type_if_paid, type_if_organic in data["definitions"]:
        tables[kind][domain] = (type_if_paid, type_if_organic)
    return ChannelDefinitions(data["origin"], tables["source"], tables["medium"])


def _literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values) -> str:
    return "[" + ", ".join(_literal(v) for v in values) + "]"


def _null_if_empty(expr: str) -> str:
    return f"nullIf(nullIf({expr}, ''), 'null')"


class _Table:
    """One kind of the domain table as SQL: names → a code, code → paid or organic type.

    The names are written once, under an alias (``prefix``), however many lookups use them.
    """

    def __init__(self, entries: dict[str, tuple[str | None, str | None]], prefix: str) -> None:
        pairs = sorted(set(entries.values()), key=lambda p: (p[0] or "", p[1] or ""))
        code = {pair: n for n, pair in enumerate(pairs, 1)}
        self.names = sorted(entries)
        self.codes = [code[entries[name]] for name in self.names]
        self.paid = _array([None, *(p[0] for p in pairs)])
        self.organic = _array([None, *(p[1] for p in pairs)])
        self.prefix = prefix
        self.written = False

    def code(self, key: str) -> str:
        """The code of ``key`` (0: not in the table)."""
        if self.written:
            names, codes = f"{self.prefix}_names", f"{self.prefix}_codes"
        else:
            self.written = True
            names = f"({_array(self.names)} AS {self.prefix}_names)"
            codes = f"([{', '.join(map(str, self.codes))}] AS {self.prefix}_codes)"
        return f"transform({key}, {names}, {codes}, 0)"

    def paid_type(self, code: str) -> str:
        return f"arrayElement({self.paid}, {code} + 1)"

    def organic_type(self, code: str) -> str:
        return f"arrayElement({self.organic}, {code} + 1)"


def channel_type_sql(
    *,
    source: str,
    medium: str,
    campaign: str,
    referring_domain: str,
    has_gclid: str,
    has_fbclid: str,
    gad_source: str,
    alias_prefix: str = "_channel",
) -> str:
    """PostHog's channel type from SQL expressions of its inputs: the raw ``utm_source``,
    ``utm_medium``, ``utm_campaign``, ``$referring_domain`` and ``gad_source`` (Nullable(String)),
    and ``has_gclid``/``has_fbclid`` (Bool).

    Each input and lookup is computed once, under an alias starting with ``alias_prefix`` (an
    alias is defined where it first appears and holds for the whole SELECT): use the expression
    once per SELECT, or give each use its own prefix.
    """
    inputs = {
        "source": source,
        "medium": medium,
        "campaign": campaign,
        "referring_domain": referring_domain,
        "has_gclid": has_gclid,
        "has_fbclid": has_fbclid,
        "gad_source": gad_source,
    }
    return _ChannelType(inputs, alias_prefix).sql()


class _ChannelType:
    """Writes the channel type expression; each part is aliased where it first appears."""

    def __init__(self, inputs: dict[str, str], alias_prefix: str):
        definitions = load_definitions()
        self.inputs = inputs
        self.prefix = alias_prefix
        self.sources = _Table(definitions.source, f"{alias_prefix}_sources")
        self.mediums = _Table(definitions.medium, f"{alias_prefix}_mediums")
        self.defined: set[str] = set()

    def once(self, name: str, expr: str) -> str:
        alias = f"{self.prefix}_{name}"
        if alias in self.defined:
            return alias
        self.defined.add(alias)
        return f"(({expr}) AS {alias})"

    def src(self) -> str:
        return self.once("source", f"lower({_null_if_empty(self.inputs['source'])})")

    def med(self) -> str:
        return self.once("medium", f"lower({_null_if_empty(self.inputs['medium'])})")

    def camp(self) -> str:
        return self.once("campaign", f"lower({_null_if_empty(self.inputs['campaign'])})")

    def ref(self) -> str:
        return self.once("referring_domain", self.inputs["referring_domain"])

    def gad(self) -> str:
        return self.once("gad_source", _null_if_empty(self.inputs["gad_source"]))

    def gclid(self) -> str:
        return self.once("has_gclid", self.inputs["has_gclid"])

    def fbclid(self) -> str:
        return self.once("has_fbclid", self.inputs["has_fbclid"])

    def source_type(self, kind: str, name: str, value: Callable[[], str]) -> str:
        """PostHog's lookup of a source: the name as it is, else its registrable domain."""
        sources = self.sources
        exact = self.once(f"{name}_code", sources.code(f"coalesce({value()}, '')"))
        domain = self.once(
            f"{name}_domain_code",
            sources.code(f"cutToFirstSignificantSubdomain(coalesce({value()}, ''))"),
        )
        type_of = sources.paid_type if kind == "paid" else sources.organic_type
        return f"coalesce({type_of(exact)}, {type_of(domain)})"

    def medium_type(self, kind: str) -> str:
        mediums = self.mediums
        code = self.once("medium_code", mediums.code(f"coalesce({self.med()}, '')"))
        return (mediums.paid_type if kind == "paid" else mediums.organic_type)(code)

    def shopping(self) -> str:
        return f"match({self.camp()}, {_literal(SHOPPING_CAMPAIGN)})"

    def video(self) -> str:
        return f"match({self.camp()}, {_literal(VIDEO_CAMPAIGN)})"

    def sql(self) -> str:
        # The order of the parts below decides where each alias is defined: keep it.
        cross_network = f"match({self.camp()}, 'cross-network')"
        med, gad, fbclid, ref = self.med, self.gad, self.fbclid, self.ref
        is_paid = (
            f"{med()} IN ({', '.join(map(_literal, PAID_MEDIUMS))}) OR startsWith({med()}, "
            f"'paid') OR {self.gclid()} OR {gad()} IS NOT NULL"
        )
        paid = f"""coalesce(
            {self.source_type("paid", "source", self.src)},
            if({self.shopping()}, 'Paid Shopping', NULL),
            {self.medium_type("paid")},
            {self.source_type("paid", "referring_domain", ref)},
            multiIf({gad()} = '1', 'Paid Search', {self.video()}, 'Paid Video',
                {fbclid()}, 'Paid Social', 'Paid Unknown'))"""
        is_direct = (
            f"{ref()} = '$direct' AND {med()} IS NULL AND ({self.src()} IS NULL OR {self.src()} "
            f"IN ({', '.join(map(_literal, DIRECT_SOURCES))})) AND NOT {fbclid()}"
        )
        organic = f"""coalesce(
            {self.source_type("organic", "source", self.src)},
            if({self.shopping()}, 'Organic Shopping', NULL),
            {self.medium_type("organic")},
            {self.source_type("organic", "referring_domain", ref)},
            multiIf({self.video()}, 'Organic Video', match({med()}, 'push$'), 'Push',
                {fbclid()}, 'Organic Social', {ref()} = '$direct', 'Direct',
                {ref()} IS NOT NULL, 'Referral', 'Unknown'))"""
        return f"""multiIf(
        {cross_network}, 'Cross Network',
        {is_paid}, {paid},
        {is_direct}, 'Direct',
        {organic})"""
