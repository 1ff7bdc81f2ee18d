"""In-process benchmarks: each criteria engine, the mapping step per resource, and the stages of one hook call.

* Engines: assessments per second of every engine in ``rules/`` on small representative inputs. RECIST 1.1 gets
  its inputs from the mapper (the public RECIST vignettes as FHIR, and the benchmark patient); the other engines
  get theirs from the public vignettes through the vignette adapters of their unit tests (tests/rules/), so the
  inputs are the ones the tests check. An engine whose adapter cannot be loaded is reported as skipped.
* Mapping: ``PatientRecord(resources)`` + ``assess_record(record)``, in microseconds per prefetch resource.
* Stages: decode, envelope validation, prefetch resolution, record, assessment, cards (views, timeline,
  suggestions) and encode, for the generated request of each N.
* GC: one whole hook call with the cyclic GC paused only during the decode vs until the decoded tree is freed
  (interleaved A/B), the effect of the policy in cds_service/app.py.

Every loop is bounded by a time budget and a repeat count; reported numbers are medians over repeats.
"""
from __future__ import annotations

import gc
import importlib.util
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.generate import PATIENT_ID, build_body  # noqa: E402

AS_OF = date(2026, 1, 15)


def _median_time(fn: Callable[[], Any], *, budget_s: float, max_rounds: int = 50, min_rounds: int = 3) -> float:
    """Median seconds of one call of ``fn`` over rounds bounded by ``budget_s`` and ``max_rounds``."""
    times = []
    end = time.perf_counter() + budget_s
    for i in range(max_rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if i + 1 >= min_rounds and time.perf_counter() >= end:
            break
    return statistics.median(times)


def _rate(calls: list[Callable[[], Any]], *, budget_s: float, max_loops: int = 100_000) -> tuple[float, int]:
    """Calls per second cycling through ``calls``: median over 5 slices of the budget. Returns (rate, calls run)."""
    rates, total = [], 0
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        end = t0 + budget_s / 5
        for _ in range(max_loops):
            for c in calls:
                c()
            n += len(calls)
            if time.perf_counter() >= end:
                break
        rates.append(n / (time.perf_counter() - t0))
        total += n
    return statistics.median(rates), total


# --- engines -----------------------------------------------------------------------------------------------------

@dataclass
class EngineRow:
    engine: str
    inputs: str
    per_s: float | None
    us_per_assessment: float | None
    note: str = ""


def _test_module(name: str):
    path = ROOT / "tests" / "rules" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} not found")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _vignettes() -> list[dict]:
    import orjson

    return orjson.loads((ROOT.parent / "shared" / "vignettes" / "public.json").read_bytes())


def _recist_vignette_calls() -> list[Callable[[], Any]]:
    from cds_service.sandbox.vignettes import to_patient
    from fhir_mappings.recist import map_recist
    from fhir_mappings.record import PatientRecord
    from rules import recist

    calls = []
    for v in _vignettes():
        if not v["id"].startswith("RECIST-"):
            continue
        p = to_patient(v)
        m = map_recist(PatientRecord(p.resources, p.patient_id))
        if m.inputs is not None:
            calls.append(lambda i=m.inputs: recist.assess(i, AS_OF))
    return calls


def _recist_bench_patient_call(n: int) -> tuple[Callable[[], Any], int]:
    import orjson

    from cds_service.prefetch import _entries
    from fhir_mappings.recist import map_recist
    from fhir_mappings.record import PatientRecord
    from rules import recist

    req = orjson.loads(build_body(n))
    resources = [r for v in req["prefetch"].values() for r in (_entries(v)[0] if v else ())]
    m = map_recist(PatientRecord(resources, PATIENT_ID))
    assert m.inputs is not None
    return (lambda: recist.assess(m.inputs, AS_OF)), len(m.inputs.timepoints)


# (label, test module, vignette filter, prepare(module, vignette) -> zero-argument call)
def _engine_specs() -> list[tuple[str, str, Callable[[dict], bool], Callable[[Any, dict], Callable[[], Any]]]]:
    from rules import (ata2015, breast, choi, eln2022, gcig, imwg2016, imwg_mrd, irecist, iwcll2018, lugano2014,
                       mrd, mrecist, pcwg3, rano2)

    def pair(engine):  # adapter returns (inputs, as_of)
        def prep(mod, v, adapter):
            inputs, as_of = adapter(mod, v)
            return lambda: engine.assess(inputs, as_of or getattr(mod, "AS_OF", AS_OF))
        return prep

    def single(engine):  # adapter returns inputs; the test's AS_OF is the date
        def prep(mod, v, adapter):
            inputs = adapter(mod, v)
            return lambda: engine.assess(inputs, getattr(mod, "AS_OF", AS_OF))
        return prep

    def lugano(mod, v, _):
        inp = v["inputs"]
        inputs = mod._pet_inputs(inp) if "pet" in inp else mod._ct_inputs(inp)
        as_of = date.fromisoformat(inp["date"])
        return lambda: lugano2014.assess(inputs, as_of)

    def spec(label, module, prefix, prep, adapter=None):
        return (label, module, lambda v: v["id"].startswith(prefix),
                lambda mod, v: prep(mod, v, adapter))

    by_criteria = lambda name: (lambda v: v["criteria"] == name)  # noqa: E731
    return [
        spec("iRECIST", "test_irecist", "iRECIST-", single(irecist), lambda m, v: m.adapt(v)),
        spec("mRECIST (HCC)", "test_mrecist", "mRECIST-", single(mrecist), lambda m, v: m.adapt(v)),
        spec("Choi (GIST)", "test_choi", "CHOI-", single(choi), lambda m, v: m.adapt(v)),
        spec("Lugano 2014 (PET-CT and CT)", "test_lugano2014", "LUGANO-", lugano),
        spec("RANO 2.0", "test_rano2", "RANO-", pair(rano2), lambda m, v: m.from_vignette(v["inputs"])),
        spec("PCWG3", "test_pcwg3", "PCWG3-", pair(pcwg3), lambda m, v: m.from_vignette(v["inputs"])),
        spec("GCIG CA-125", "test_gcig", "GCIG-", pair(gcig), lambda m, v: m.from_vignette(v["inputs"])),
        spec("ELN 2022 AML", "test_eln2022", "ELN-", pair(eln2022), lambda m, v: m.adapt(v["inputs"])),
        spec("IMWG 2016", "test_imwg2016", "IMWG-", single(imwg2016), lambda m, v: m.imwg_inputs(v)),
        (("IMWG 2016 MRD", "test_imwg2016", by_criteria("IMWG 2016 MRD"),
          lambda mod, v: single(imwg_mrd)(mod, v, lambda m, x: m.mrd_inputs(x)))),
        spec("iwCLL 2018", "test_iwcll2018", "CLL-", single(iwcll2018), lambda m, v: m.vignette_inputs(v)),
        (("ALL MRD", "test_mrd", lambda v: v["criteria"].startswith("ALL MRD"),
          lambda mod, v: single(mrd)(mod, v, lambda m, x: m.vignette_inputs(x)))),
        spec("ATA 2015", "test_ata2015", "ATA-", pair(ata2015), lambda m, v: m.ata_inputs_from_vignette(v)),
        spec("Breast pCR/RCB", "test_breast", "PCR-", pair(breast), lambda m, v: m.breast_inputs_from_vignette(v)),
    ]


def bench_engines(budget_s: float = 0.4, recist_n: int = 1000) -> list[EngineRow]:
    rows: list[EngineRow] = []
    try:
        calls = _recist_vignette_calls()
        rate, _ = _rate(calls, budget_s=budget_s)
        rows.append(EngineRow("RECIST 1.1", f"{len(calls)} public vignettes (FHIR -> mapper -> engine inputs)", rate,
                              1e6 / rate))
    except Exception as exc:  # a broken adapter must not stop the benchmark
        rows.append(EngineRow("RECIST 1.1", "public vignettes", None, None, f"skipped: {type(exc).__name__}: {exc}"))
    call, tps = _recist_bench_patient_call(recist_n)
    rate, _ = _rate([call], budget_s=budget_s)
    rows.append(EngineRow("RECIST 1.1", f"benchmark patient N={recist_n:,} ({tps} time points)", rate, 1e6 / rate))
    vignettes = _vignettes()
    modules: dict[str, Any] = {}
    for label, module, wanted, prepare in _engine_specs():
        chosen = [v for v in vignettes if wanted(v)]
        try:
            if module not in modules:
                modules[module] = _test_module(module)
            calls = []
            for v in chosen:
                try:
                    c = prepare(modules[module], v)
                    c()
                    calls.append(c)
                except Exception:  # noqa: BLE001 - a vignette the adapter does not take
                    continue
            if not calls:
                raise ValueError("no vignette could be adapted")
            rate, _ = _rate(calls, budget_s=budget_s)
            rows.append(EngineRow(label, f"{len(calls)} public vignette(s) via tests/rules/{module}.py", rate, 1e6 / rate))
        except Exception as exc:  # noqa: BLE001
            rows.append(EngineRow(label, f"tests/rules/{module}.py", None, None,
                                  f"skipped: {type(exc).__name__}: {str(exc)[:80]}"))
    try:
        from rules.timeline import build_timeline

        a = call()  # the RECIST assessment of the benchmark patient
        rate, _ = _rate([lambda: build_timeline(a, AS_OF, cancer_type="breast")], budget_s=budget_s)
        rows.append(EngineRow("timeline (remission course)", f"RECIST history of the N={recist_n:,} patient", rate,
                              1e6 / rate))
    except Exception as exc:  # noqa: BLE001
        rows.append(EngineRow("timeline (remission course)", "", None, None, f"skipped: {type(exc).__name__}: {exc}"))
    return rows


# --- mapping and stages ----------------------------------------------------------------------------------------

# "echo decode" is what the echo does with the body (orjson.loads and freeing the tree), for comparison; the
# others are the service's own stages, "free" being the release of its request after the response
STAGES = ("echo decode", "decode", "envelope", "resolve", "record", "assess", "cards", "encode", "free")


@dataclass
class StageRow:
    n: int
    body_bytes: int
    resources: int
    ms: dict[str, float]             # stage -> median ms
    total_ms: float
    mapping_us_per_resource: float   # (record + assess) / resources
    cards: int


def bench_stages(n: int, *, budget_s: float = 1.0, max_rounds: int = 30) -> StageRow:
    """Median time of each stage of one hook call for the generated request of size ``n``.

    The cyclic GC is paused for the whole call and the decoded tree is freed before it is re-enabled, as the
    app does (cds_service/app.py ``_hook``).
    """
    import orjson

    from cds_service.app import evaluate_request
    from cds_service.config import load_settings
    from cds_service.hook_body import loads_hook_request
    from cds_service.jsonio import dumps
    from cds_service.models import HookRequest
    from cds_service.prefetch import resolve
    from fhir_mappings.pipeline import assess_record
    from fhir_mappings.record import PatientRecord

    from cds_service import malloc_tuning

    malloc_tuning.tune()  # as the app does at start-up (else both decodes measure page faults)
    settings = load_settings({"feedback_database_url": "sqlite:///:memory:"})
    options = settings.mapping_options() if hasattr(settings, "mapping_options") else {}
    raw = build_body(n)

    def one_round() -> tuple[list[float], int, int]:
        t0 = time.perf_counter()
        e = orjson.loads(raw)
        del e
        t1 = time.perf_counter()
        b = loads_hook_request(raw)
        t2 = time.perf_counter()
        HookRequest.model_validate(b)
        t3 = time.perf_counter()
        res = resolve(b, settings, AS_OF)
        t4 = time.perf_counter()
        record = PatientRecord(res.resources, PATIENT_ID)
        t5 = time.perf_counter()
        assess_record(record, AS_OF, options)
        t6 = time.perf_counter()
        n_res = len(res.resources)
        del b, res, record
        b2 = loads_hook_request(raw)  # a fresh request: the stages above decoded some of its resources
        t7 = time.perf_counter()
        status, result = evaluate_request(b2, settings, AS_OF)
        t8 = time.perf_counter()
        dumps(result)
        t9 = time.perf_counter()
        assert status == 200
        n_cards = len(result["cards"])
        del b2, result
        t10 = time.perf_counter()
        # evaluate_request repeats resolve + record + assess; "cards" is what it adds on top of them
        whole = t8 - t7
        stages = [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, max(0.0, whole - (t6 - t3)), t9 - t8,
                  t10 - t9]
        return stages, n_res, n_cards

    def paused() -> tuple[list[float], int, int]:
        was = gc.isenabled()
        gc.disable()
        try:
            return one_round()  # the decoded tree dies with one_round's frame, before the GC is back on
        finally:
            if was:
                gc.enable()

    paused()  # warm: lazy imports, caches
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    totals = []
    n_resources = n_cards = 0
    end = time.perf_counter() + budget_s
    for i in range(max_rounds):
        stages, n_resources, n_cards = paused()
        # the service's call: decode, envelope, evaluate_request (= resolve + record + assess + cards), encode, free
        totals.append(sum(stages[1:]))
        for s, dt in zip(STAGES, stages):
            samples[s].append(dt * 1000)
        if i >= 2 and time.perf_counter() >= end:
            break
    ms = {s: statistics.median(v) for s, v in samples.items()}
    mapping = (ms["record"] + ms["assess"]) * 1000 / max(1, n_resources)
    return StageRow(n, len(raw), n_resources, ms, statistics.median(totals) * 1000, mapping, n_cards)


@dataclass
class GcRow:
    n: int
    decode_only_ms: float   # GC paused during orjson.loads only (the app before 2026-11)
    whole_call_ms: float    # GC paused until the decoded tree is freed (the app now)
    ratio: float            # median of the per-pair ratios decode_only / whole_call


def bench_gc(n: int, *, budget_s: float = 2.0, max_pairs: int = 25) -> GcRow:
    """Interleaved A/B of one whole hook call (decode, validate, evaluate, encode) under the two GC policies."""
    import orjson

    from cds_service.app import evaluate_request
    from cds_service.config import load_settings
    from cds_service.jsonio import dumps
    from cds_service.models import HookRequest

    settings = load_settings({"feedback_database_url": "sqlite:///:memory:"})
    raw = build_body(n)

    def call(body_pause_only: bool) -> None:
        if body_pause_only:
            gc.disable()
            try:
                b = orjson.loads(raw)
            finally:
                gc.enable()
        else:
            b = orjson.loads(raw)
        HookRequest.model_validate(b)
        dumps(evaluate_request(b, settings, AS_OF)[1])

    def timed(body_pause_only: bool) -> float:
        t0 = time.perf_counter()
        was = gc.isenabled()
        if not body_pause_only:
            gc.disable()
        try:
            call(body_pause_only)  # b dies with call()'s frame
        finally:
            if was:
                gc.enable()
        return time.perf_counter() - t0

    timed(True), timed(False)
    a, b, r = [], [], []
    end = time.perf_counter() + budget_s
    for i in range(max_pairs):
        if i % 2 == 0:  # alternate which policy goes first
            x = timed(True)
            y = timed(False)
        else:
            y = timed(False)
            x = timed(True)
        a.append(x)
        b.append(y)
        r.append(x / y)
        if i >= 3 and time.perf_counter() >= end:
            break
    return GcRow(n, statistics.median(a) * 1000, statistics.median(b) * 1000, statistics.median(r))


def main() -> int:
    for row in bench_engines(budget_s=0.2):
        print(row)
    for n in (100, 1000):
        print(bench_stages(n, budget_s=0.5))
        print(bench_gc(n, budget_s=1.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
