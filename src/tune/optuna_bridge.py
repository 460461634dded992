# lakebuild's bridge to Optuna: one study, driven over stdin/stdout, one JSON object per
# line each way. lakebuild asks for trials, reports their intermediate values, asks
# whether to prune and tells the result; Optuna samples, prunes and keeps the study in
# its own storage, so optuna.load_study and optuna-dashboard see every trial.
# Bundled in the lakebuild binary (src/tune/optuna.rs) and run with `python3 -c`.
import json
import math
import sys
import warnings

# A pruner's median over steps that are all NaN (diverged) warns; the NaN is the point.
warnings.filterwarnings("ignore", category=RuntimeWarning)


def plain(o):
    # numpy scalars (a pruner's verdict, a sampled value) as Python values
    return o.item() if hasattr(o, "item") else str(o)


def reply(obj):
    sys.stdout.write(json.dumps(obj, default=plain) + "\n")
    sys.stdout.flush()


try:
    import optuna
    from optuna.trial import TrialState
except Exception as e:  # reported to lakebuild, which says what to install
    reply({"ok": False, "error": "import optuna failed: %s" % e, "missing": True})
    sys.exit(0)

optuna.logging.set_verbosity(optuna.logging.WARNING)
reply({"ok": True, "optuna": optuna.__version__, "python": sys.version.split()[0]})

STATES = {
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "fail": TrialState.FAIL,
}


def storage_of(url):
    if "://" in url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(url))


def sampler_of(name, seed):
    s = optuna.samplers
    if name == "tpe":
        return s.TPESampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed)
    if name == "gp":
        return s.GPSampler(seed=seed)
    if name == "qmc":
        return s.QMCSampler(seed=seed)
    raise ValueError("unknown sampler %r" % name)


def pruner_of(name):
    p = optuna.pruners
    if name == "median":
        return p.MedianPruner()
    if name == "percentile":
        return p.PercentilePruner(25.0)
    if name == "successive_halving":
        return p.SuccessiveHalvingPruner()
    if name == "hyperband":
        return p.HyperbandPruner()
    if name == "none":
        return p.NopPruner()
    raise ValueError("unknown pruner %r" % name)


def distribution_of(d):
    D = optuna.distributions
    if d["kind"] == "float":
        return D.FloatDistribution(d["low"], d["high"], log=d["log"], step=d.get("step"))
    if d["kind"] == "int":
        return D.IntDistribution(d["low"], d["high"], log=d["log"], step=d["step"])
    return D.CategoricalDistribution(d["choices"])


def finite(v):
    # JSON has no NaN: a diverged step's value travels as null
    return v if v is None or math.isfinite(v) else None


def trial_of(t):
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "params": t.params,
        "value": finite(t.value),
        "intermediate": {str(k): finite(v) for k, v in t.intermediate_values.items()},
        "user_attrs": t.user_attrs,
        "start": t.datetime_start.isoformat() if t.datetime_start else None,
        "complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    }


study = None
space = {}
live = {}


def handle(req):
    global study, space
    cmd = req["cmd"]
    if cmd == "open":
        space = {p["name"]: distribution_of(p["distribution"]) for p in req["space"]}
        study = optuna.create_study(
            storage=storage_of(req["storage"]),
            study_name=req["study"],
            direction=req["direction"],
            pruner=pruner_of(req["pruner"]),
            load_if_exists=True,
        )
        # Seeded by the seed and the trials already in the study: a new study with the
        # same seed draws the same params; a resumed one goes on to new ones instead of
        # drawing its first ones again.
        study.sampler = sampler_of(req["sampler"], req["seed"] + len(study.trials))
        for k, v in req.get("attrs", {}).items():
            study.set_user_attr(k, v)
        return {"trials": [trial_of(t) for t in study.get_trials(deepcopy=False)]}
    if study is None:
        raise ValueError("no study is open")
    if cmd == "ask":
        t = study.ask(space)
        for k, v in req.get("attrs", {}).items():
            t.set_user_attr(k, v)
        live[t.number] = t
        return {"number": t.number, "params": t.params}
    if cmd == "report":
        t = live[req["number"]]
        # NaN travels as null (JSON has no NaN): a diverged step
        value = float("nan") if req["value"] is None else req["value"]
        t.report(value, req["step"])
        return {"prune": bool(t.should_prune())}
    if cmd == "attr":
        study._storage.set_trial_user_attr(
            study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, req["number"]
            ),
            req["key"],
            req["value"],
        )
        return {}
    if cmd == "tell":
        state = STATES[req["state"]]
        value = req.get("value")
        t = live.pop(req["number"], req["number"])
        if state == TrialState.COMPLETE:
            study.tell(t, value)
        else:
            study.tell(t, state=state)
        return {}
    if cmd == "enqueue":
        study.enqueue_trial(req["params"], user_attrs=req.get("attrs", {}))
        return {}
    if cmd == "trials":
        return {"trials": [trial_of(t) for t in study.get_trials(deepcopy=False)]}
    raise ValueError("unknown command %r" % cmd)


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        out = handle(json.loads(line))
        out["ok"] = True
    except Exception as e:
        out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    reply(out)
