"""Which tables a GoogleSQL statement reads and writes, found with regular expressions.

Good enough to decide which BigQuery permissions a query job needs, not a parser. Known
gaps: a second table in a comma join (``FROM a, b``) and implicit array joins
(``JOIN t.arr``, taken for ``dataset.table``) are not told apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENTIFIER = r"(?:`[^`]+`|[A-Za-z_][\w-]*)"
_TABLE_PATH = rf"{_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER})*"

# Comments and string literals, which may hold anything; quoted identifiers are kept.
_NOISE = re.compile(
    r"--[^\n]*|#[^\n]*|/\*.*?\*/"
    r"|'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
    r"|(`[^`]*`)",
    re.DOTALL,
)
# FROM that does not introduce a table: EXTRACT(DAY FROM ts), a IS DISTINCT FROM b.
_NON_TABLE_FROM = re.compile(
    r"(\bEXTRACT\s*\(\s*\w+(?:\s*\(\s*\w+\s*\))?\s+|\bDISTINCT\s+)FROM\b", re.IGNORECASE
)
_READ = re.compile(rf"\b(?:FROM|JOIN|USING)\s+({_TABLE_PATH})(\s*\()?", re.IGNORECASE)
_CTE_NAME = re.compile(rf"(?:\bWITH(?:\s+RECURSIVE)?|,)\s*({_IDENTIFIER})\s+AS\s*\(", re.IGNORECASE)

# The statement's target, by the verb that starts it.
_TARGETS = (
    ("INSERT", re.compile(rf"INSERT\s+(?:INTO\s+)?({_TABLE_PATH})", re.IGNORECASE)),
    ("MERGE", re.compile(rf"MERGE\s+(?:INTO\s+)?({_TABLE_PATH})", re.IGNORECASE)),
    ("UPDATE", re.compile(rf"UPDATE\s+({_TABLE_PATH})", re.IGNORECASE)),
    ("DELETE", re.compile(rf"DELETE\s+(?:FROM\s+)?({_TABLE_PATH})", re.IGNORECASE)),
    ("TRUNCATE", re.compile(rf"TRUNCATE\s+TABLE\s+({_TABLE_PATH})", re.IGNORECASE)),
    (
        "CREATE",
        re.compile(
            r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?(?:TABLE|VIEW)\s+"
            rf"(?:IF\s+NOT\s+EXISTS\s+)?({_TABLE_PATH})",
            re.IGNORECASE,
        ),
    ),
    (
        "DROP",
        re.compile(rf"DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?({_TABLE_PATH})", re.IGNORECASE),
    ),
    ("ALTER", re.compile(rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_TABLE_PATH})", re.IGNORECASE)),
)


@dataclass(frozen=True)
class TableRef:
    project: str
    dataset: str
    table: str

    def __str__(self) -> str:
        return f"{self.project}:{self.dataset}.{self.table}"


@dataclass(frozen=True)
class DatasetRef:
    project: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.project}:{self.dataset}"


@dataclass(frozen=True)
class Statement:
    """One statement: its verb (SELECT for queries), target table, and what it reads."""

    verb: str
    target: TableRef | None
    reads: frozenset[TableRef]
    # Datasets whose INFORMATION_SCHEMA views it reads.
    metadata_reads: frozenset[DatasetRef]


def statements(
    sql: str, *, default_project: str, default_dataset: DatasetRef | None = None
) -> list[Statement]:
    """The statements of a query or script, in order."""
    cleaned = _NOISE.sub(lambda match: match.group(1) or " ", sql)
    cleaned = _NON_TABLE_FROM.sub(lambda match: match.group(1) + "OF", cleaned)
    resolver = _Resolver(default_project, default_dataset, cte_names=_cte_names(cleaned))
    return [_statement(text.strip(), resolver) for text in cleaned.split(";") if text.strip()]


def _cte_names(sql: str) -> set[str]:
    return {_path_parts(match.group(1))[0].lower() for match in _CTE_NAME.finditer(sql)}


def _statement(text: str, resolver: _Resolver) -> Statement:
    verb, target = "SELECT", None
    for candidate_verb, pattern in _TARGETS:
        match = pattern.match(text)
        if match:
            verb, target = candidate_verb, resolver.table(match.group(1))
            break
    reads: set[TableRef] = set()
    metadata_reads: set[DatasetRef] = set()
    for match in _READ.finditer(text):
        if match.group(2):  # a function call such as UNNEST(...)
            continue
        parts = _path_parts(match.group(1))
        if len(parts) >= 2 and parts[-2].upper() == "INFORMATION_SCHEMA":
            dataset = resolver.metadata_dataset(parts[:-2])
            if dataset is not None:
                metadata_reads.add(dataset)
            continue
        table = resolver.table(match.group(1))
        if table is not None:
            reads.add(table)
    return Statement(verb, target, frozenset(reads), frozenset(metadata_reads))


def _path_parts(path: str) -> list[str]:
    return [part.strip() for part in path.replace("`", "").split(".")]


@dataclass
class _Resolver:
    default_project: str
    default_dataset: DatasetRef | None
    cte_names: set[str]

    def table(self, path: str) -> TableRef | None:
        parts = _path_parts(path)
        if len(parts) == 3:
            return TableRef(*parts)
        if len(parts) == 2:
            return TableRef(self.default_project, *parts)
        if len(parts) == 1 and self.default_dataset and parts[0].lower() not in self.cte_names:
            return TableRef(self.default_dataset.project, self.default_dataset.dataset, parts[0])
        return None

    def metadata_dataset(self, prefix: list[str]) -> DatasetRef | None:
        if not prefix or prefix[-1].lower().startswith("region-"):
            return None  # project- or region-wide views: not a dataset's permission
        if len(prefix) == 2:
            return DatasetRef(*prefix)
        if len(prefix) == 1:
            return DatasetRef(self.default_project, prefix[0])
        return None
