"""What a canary analysis is: checks, comparisons and limits, the port that answers queries,
and the queries one run asks, rendered from the templates.

Pure: the file format is validated here so that a bad analysis is refused once, at load time,
and everything downstream can trust it. Reading files and asking Prometheus live at the edges.
"""

from __future__ import annotations

import math
import string
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Protocol, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PlainSerializer,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rollout.domain.errors import InvalidInput

#: placeholders a query template may use; ``$target`` is the side being measured
PLACEHOLDERS = frozenset({"namespace", "stable", "canary", "target", "pool", "model", "window"})
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: object) -> timedelta:
    """``90s``, ``5m``, ``1h`` (a unit is required: a bare number is ambiguous in a file)."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise ValueError(f"{value!r} is not a duration: write a whole number with s, m or h "
                         "(e.g. 30s, 5m, 1h)")
    return timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])


def format_duration(value: timedelta) -> str:
    """The file's own form (``90s``), so a saved analysis reads back as it was written."""
    return f"{int(value.total_seconds())}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration),
                     PlainSerializer(format_duration, return_type=str)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubjectKind(StrEnum):
    """What a rollout moves traffic between, as an analysis sees it: pools (an HTTPRoute
    split) or adapters (an InferenceModelRewrite split)."""

    POOL = "pool"
    ADAPTER = "adapter"


class OnFailure(StrEnum):
    ROLLBACK = "rollback"
    PAUSE = "pause"


def _check_template(text: str) -> str:
    if not text.strip():
        raise ValueError("the query is empty")
    tpl = string.Template(text)
    if not tpl.is_valid():
        raise ValueError("a '$' must start a placeholder ($canary) or be doubled ($$)")
    unknown = sorted(set(tpl.get_identifiers()) - PLACEHOLDERS)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {', '.join('$' + u for u in unknown)}; "
                         f"known: {', '.join('$' + p for p in sorted(PLACEHOLDERS))}")
    return text


#: a PromQL template: ``$name`` placeholders (see PLACEHOLDERS), ``$$`` for a literal ``$``
PromQLTemplate = Annotated[str, AfterValidator(_check_template)]


def _finite(value: float) -> float:
    """A bound of .inf passes every canary and .nan none: refused where it is written."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number: write a number such as 0.05 or 1.2")
    return value


#: a number of the analysis file: never infinite or NaN
Finite = Annotated[float, AfterValidator(_finite)]


def render(template: str, values: dict[str, str]) -> str:
    return string.Template(template).substitute(values)


class Comparison(Frozen):
    """How the canary's value is judged: exactly one bound, absolute or relative to stable.

    ``margin`` widens a relative bound by an absolute amount, so that a stable pool with no
    errors at all (0 x factor = 0) does not fail a canary over one unlucky request.
    """

    at_most: Finite | None = None
    at_least: Finite | None = None
    at_most_times_stable: Annotated[Finite, Field(gt=0)] | None = None
    at_least_times_stable: Annotated[Finite, Field(gt=0)] | None = None
    margin: Annotated[Finite, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [k for k in ("at_most", "at_least", "at_most_times_stable",
                             "at_least_times_stable") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of at_most, at_least, at_most_times_stable, "
                             f"at_least_times_stable (got {', '.join(given) or 'none'})")
        if self.margin and not self.relative:
            raise ValueError("margin only applies to a bound relative to stable")
        return self

    @property
    def relative(self) -> bool:
        return self.at_most_times_stable is not None or self.at_least_times_stable is not None

    @property
    def upper(self) -> bool:
        return self.at_most is not None or self.at_most_times_stable is not None

    def threshold(self, stable: float | None) -> float | None:
        """The bound the canary is held to; None when it needs a stable value that is missing
        or not finite, or the bound itself is not finite: a stable of +Inf would make a
        threshold every canary passes, and -Inf one every canary fails."""
        if self.at_most is not None:
            return self.at_most
        if self.at_least is not None:
            return self.at_least
        if stable is None or not math.isfinite(stable):
            return None
        if self.at_most_times_stable is not None:
            bound = stable * self.at_most_times_stable + self.margin
        else:
            assert self.at_least_times_stable is not None
            bound = stable * self.at_least_times_stable - self.margin
        return bound if math.isfinite(bound) else None

    def holds(self, canary: float, threshold: float) -> bool:
        return canary <= threshold if self.upper else canary >= threshold

    def describe(self) -> str:
        if self.at_most is not None:
            return f"at most {self.at_most:g}"
        if self.at_least is not None:
            return f"at least {self.at_least:g}"
        if self.at_most_times_stable is not None:
            margin = f" + {self.margin:g}" if self.margin else ""
            return f"at most {self.at_most_times_stable:g} x stable{margin}"
        margin = f" - {self.margin:g}" if self.margin else ""
        return f"at least {self.at_least_times_stable:g} x stable{margin}"


class Check(Frozen):
    """One metric compared between canary and stable. The query is asked once per side, with
    ``$target`` set to that side's pool (or adapter) name."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]
    query: PromQLTemplate
    pass_if: Comparison
    samples: PromQLTemplate | None = None  # per-side sample count; else `requests`
    min_samples: NonNegativeInt | None = None  # the analysis' `min_samples` if unset
    #: the value is a share of the check's samples (errors / requests): a canary short of
    #: `min_samples` whose share fails even with every missing sample counted good fails
    #: at once, rather than waiting for traffic that would not change the verdict
    share_of_samples: bool = False
    applies_to: tuple[SubjectKind, ...] = (SubjectKind.POOL, SubjectKind.ADAPTER)

    @field_validator("applies_to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value


class SplitVerification(Frozen):
    """The observed share of requests reaching the canary must match the written weight."""

    tolerance: Annotated[Finite, Field(gt=0, lt=1)] = 0.05  # in share points: 0.05 = 5%
    min_requests: PositiveInt = 200  # both sides together, in the window


#: the most checks the analysis file may give one analysis: each is two queries a run for
#: every rollout, a line on the card and in `status`, and a result kept in the rollout's state
MAX_CHECKS = 20
#: the validation context of an analysis as written in the file (`AnalysisFile.written`):
#: bounds for what may be written now, which a rollout's record of its analysis, read back,
#: is not held to (one started under older bounds still loads)
WRITTEN = {"written": True}


class AnalysisSpec(Frozen):
    """One named analysis, as written in the analysis file."""

    description: str = ""
    interval: Duration = timedelta(seconds=60)
    window: Duration = timedelta(minutes=5)
    warmup: Duration = timedelta(seconds=60)
    failure_limit: NonNegativeInt = 1  # failed runs tolerated in a step; one more fails it
    passes_required: PositiveInt = 1  # consecutive passing runs before the step has passed
    on_failure: OnFailure = OnFailure.ROLLBACK
    inconclusive_timeout: Duration = timedelta(minutes=15)  # then pause, with the reason
    #: per-side request count in the window (samples and the split share); one template, or
    #: one per kind of rollout when pools and adapters are selected differently
    requests: PromQLTemplate | dict[SubjectKind, PromQLTemplate]
    min_samples: NonNegativeInt = 50
    split: SplitVerification | None = Field(default_factory=SplitVerification)
    checks: Annotated[tuple[Check, ...], Field(min_length=1)]

    @field_validator("checks")
    @classmethod
    def _few_enough_to_write(cls, checks: tuple[Check, ...],
                             info: ValidationInfo) -> tuple[Check, ...]:
        if info.context == WRITTEN and len(checks) > MAX_CHECKS:
            raise ValueError(f"at most {MAX_CHECKS} checks an analysis, not {len(checks)}: "
                             "each is two queries a run for every rollout")
        return checks

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names must be unique: {', '.join(dupes)} repeated")
        if self.interval < timedelta(seconds=1) or self.window < timedelta(seconds=1):
            raise ValueError("interval and window must be at least 1s")
        return self

    def checks_for(self, kind: SubjectKind) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if kind in c.applies_to)

    def requests_for(self, kind: SubjectKind) -> str | None:
        if isinstance(self.requests, str):
            return self.requests
        return self.requests.get(kind)

    def supports(self, kind: SubjectKind) -> bool:
        """An analysis applies to a kind of rollout when it can count its requests and has
        at least one check for it."""
        return self.requests_for(kind) is not None and bool(self.checks_for(kind))


class AnalysisFile(Frozen):
    """The whole file: named analyses and which one a rollout gets without ``--analysis``."""

    default: str
    analyses: Annotated[dict[str, AnalysisSpec], Field(min_length=1)]

    @classmethod
    def written(cls, data: object) -> AnalysisFile:
        """The file's data validated as written now (its bounds, `WRITTEN`)."""
        return cls.model_validate(data, context=WRITTEN)

    @model_validator(mode="after")
    def _default_exists(self) -> Self:
        if self.default not in self.analyses:
            raise ValueError(f"default {self.default!r} is not one of the analyses: "
                             f"{', '.join(sorted(self.analyses))}")
        return self

    def select(self, name: str | None, kind: SubjectKind) -> tuple[str, AnalysisSpec]:
        """The analysis ``--analysis NAME`` picks (the default without a name); refused,
        saying what there is, for an unknown name or one that does not fit the rollout."""
        chosen = name or self.default
        if chosen not in self.analyses:
            raise InvalidInput(f"no analysis {chosen!r}: choose one of "
                               f"{', '.join(sorted(self.analyses))}")
        spec = self.analyses[chosen]
        if not spec.supports(kind):
            raise InvalidInput(f"analysis {chosen!r} has no request count or no checks for "
                               f"{kind} rollouts")
        return chosen, spec


# ---- what is measured ------------------------------------------------------------------


class Subject(Frozen):
    """The canary and stable of a rollout as the queries need them.

    For a pool rollout ``stable``/``canary`` are InferencePool names; for an adapter rollout
    they are the adapter names (the endpoint picker's ``target_model_name``), ``pool`` is the
    pool serving both and ``model`` the model name clients ask for.
    """

    kind: SubjectKind
    namespace: str
    stable: str
    canary: str
    pool: str = ""
    model: str = ""
    #: the written weights' canary share of what canary and stable receive together
    #: (canary / (canary + stable)): other backends of the rule are not counted
    canary_share: Annotated[float, Field(ge=0, le=1)]

    @model_validator(mode="after")
    def _adapters_name_their_pool(self) -> Self:
        if self.kind is SubjectKind.ADAPTER and not self.pool:
            raise ValueError("an adapter rollout names the pool serving its adapters")
        return self

    def values(self, side: Side, window: timedelta) -> dict[str, str]:
        target = self.canary if side is Side.CANARY else self.stable
        return {
            "namespace": self.namespace, "stable": self.stable, "canary": self.canary,
            "target": target, "pool": self.pool or target, "model": self.model,
            "window": f"{max(int(window.total_seconds()), 1)}s",
        }


class Side(StrEnum):
    CANARY = "canary"
    STABLE = "stable"


class ResultKind(StrEnum):
    """Why a query has (or has not) a number: only ``VALUE`` can ever count towards a pass."""

    VALUE = "value"
    NO_DATA = "no_data"  # an empty vector, or NaN (e.g. 0/0 with no traffic)
    UNAVAILABLE = "unavailable"  # unreachable, timed out, overloaded: ask again later
    ERROR = "error"  # the server refused the query (bad PromQL, wrong result type)


class QueryResult(Frozen):
    kind: ResultKind
    value: float | None = None
    reason: str = ""
    #: the fault is the server's address or credentials, not the query: it answered, but
    #: not as Prometheus' query API (a 404 page, a redirect, a proxy's HTML), or refused the
    #: credentials (401, 403, whatever the body). The kind still says what the run makes of it.
    not_prometheus: bool = False
    #: the server's TLS certificate did not verify (no CA the bot trusts signed it, or it
    #: does not name the host): unavailable to a run, which waits for a fix like for an
    #: outage, but a fault of PROMETHEUS_URL or SSL_CERT_FILE that will not pass by itself
    untrusted: bool = False
    #: the TLS handshake failed for a reason a retry meets again (the port does not speak
    #: TLS, no protocol version or cipher in common, a client certificate asked for):
    #: unavailable to a run, a fault of PROMETHEUS_URL or of the server's TLS settings
    handshake_refused: bool = False
    #: the server took the query but failed evaluating it (``execution``): the query's
    #: fault (a many-to-many match, a limit it passes) or a store's behind it (Thanos or
    #: Mimir with a store down refuses so, partial answers being off); nothing says which
    evaluation_failed: bool = False

    @classmethod
    def of(cls, value: float) -> QueryResult:
        if math.isnan(value):
            return cls(kind=ResultKind.NO_DATA, reason="the query returned NaN (no traffic?)")
        return cls(kind=ResultKind.VALUE, value=value)

    @property
    def number(self) -> float | None:
        return self.value if self.kind is ResultKind.VALUE else None


class Analysis(Protocol):
    """The port: asks one instant query, evaluated at ``at``. Never raises for the server's
    trouble; a result says what went wrong, so that trouble reads as inconclusive, never as
    a pass."""

    def query(self, promql: str, at: datetime) -> QueryResult: ...


class Query(Frozen):
    """One rendered query of a run, keyed so its result can be matched back."""

    key: str  # "<check>/<side>", "<check>/<side>/samples" or "requests/<side>"
    promql: str


def queries_for(spec: AnalysisSpec, subject: Subject, window: timedelta) -> tuple[Query, ...]:
    """Every query one run asks: each check per side, its sample counts, and the requests."""
    requests = spec.requests_for(subject.kind)
    if requests is None:
        raise ValueError(f"the analysis does not count requests of {subject.kind} rollouts")
    out: list[Query] = []
    for side in Side:
        values = subject.values(side, window)
        out.append(Query(key=f"requests/{side}", promql=render(requests, values)))
        for check in spec.checks_for(subject.kind):
            out.append(Query(key=f"{check.name}/{side}", promql=render(check.query, values)))
            if check.samples is not None:
                out.append(Query(key=f"{check.name}/{side}/samples",
                                 promql=render(check.samples, values)))
    return tuple(out)


def ask(port: Analysis, queries: tuple[Query, ...], at: datetime) -> dict[str, QueryResult]:
    """Put each query to the port, all evaluated at the one instant ``at``, so that a scrape
    landing between two of them cannot make the canary's and the stable's figures (or a
    check and its sample count) describe different moments. Results are keyed as the queries
    are. Once the server is unavailable the rest of the run is too, unasked: a run waits at
    most one timeout."""
    out: dict[str, QueryResult] = {}
    down: QueryResult | None = None
    for q in queries:
        out[q.key] = down or port.query(q.promql, at)
        if out[q.key].kind is ResultKind.UNAVAILABLE:
            down = out[q.key]
    return out
