"""azure_devops.py — replays an Azure Pipelines YAML pipeline the way Azure DevOps runs it.

Compile time: runtime parameters, ${{ }} template expressions (parameters, YAML variables,
${{ if }}, ${{ each }} in mappings and sequences), step templates. Run time: stages and jobs in
dependency order with their conditions (dependencies.<x>.result / .outputs[...],
stageDependencies.<stage>.<job>.outputs[...], variables[...], the status functions), job
variables from $[ ] expressions, $(macro) expansion, each job on a fresh agent, and what the
agent does with a step's stdout: ##vso[...] logging commands parsed as the agent parses them
(the marker anywhere in a line, properties split on ';' and '=', values unescaped %3B %0D %0A
%5D then %AZP25).

Output variables are what the replay checks hardest: a reference to an output that the step it
names did not write — in a job variable, a condition or a macro — fails the replay, where the
real agent would quietly give an empty value.
"""

import json
import os
import re
import shutil

from common import ReplayError, clean_env, fake_jwt, load_yaml, log, pending_manifest, run_script
from expr import Context, ExprError, Loose, Strict, interpolate, parse, evaluate, truthy, to_string

DIALECT = "azure"
SUCCEEDED, FAILED, SKIPPED = "Succeeded", "Failed", "Skipped"

# ---------------------------------------------------------------------------------------------
# Logging commands, as the agent reads them (Command.TryParse, CommandStringConvertor.Unescape)

_SPECIAL = [(";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D")]


def vso_unescape(text):
    for token, replacement in _SPECIAL:
        text = text.replace(replacement, token)
    return text.replace("%AZP25", "%")


def parse_vso(line):
    """(area.event, {property: value}, data) for a line holding a ##vso command, else None."""
    start = line.find("##vso[")
    if start < 0:
        return None
    rb = line.find("]", start)
    if rb < 0:
        return None
    info = line[start + len("##vso["):rb]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    parts = [p for p in name.split(".") if p]
    if len(parts) != 2:
        return None
    props = {}
    if space > 0:
        for prop in info[space + 1:].split(";"):
            if not prop:
                continue
            eq = prop.find("=")
            if 0 < eq < len(prop) - 1:
                props[prop[:eq].lower()] = vso_unescape(prop[eq + 1:])
    return f"{parts[0].lower()}.{parts[1].lower()}", props, vso_unescape(line[rb + 1:])


def is_true(text):
    return str(text).strip().lower() == "true"


# ---------------------------------------------------------------------------------------------
# Compile time

class Compiler:
    def __init__(self, predefined, variables):
        self.predefined = predefined  # compile-time predefined variables (Build.SourceBranch ...)
        self.variables = variables    # YAML variables seen so far (name -> value)

    def ctx(self, parameters, extra=None):
        names = {"parameters": Strict(parameters, "template parameters"),
                 "variables": Loose({**self.predefined, **self.variables}, "variables")}
        if extra:
            names.update(extra)
        return Context(DIALECT, names, where="template expression")

    def expand(self, node, parameters, base, extra=None):
        """Evaluates ${{ }} in node; `base` is the folder templates are relative to."""
        if isinstance(node, dict):
            out = {}
            items = list(node.items())
            i = 0
            while i < len(items):
                key, value = items[i]
                i += 1
                k = key.strip() if isinstance(key, str) else key
                directive = isinstance(k, str) and k.startswith("${{") and k.endswith("}}") and \
                    re.match(r"(if|elseif|else|each|insert)\b", k[3:-2].strip())
                if directive:
                    inner = k[3:-2].strip()
                    if inner.startswith("if ") or inner.startswith("elseif ") or inner == "else":
                        # An if / elseif... / else chain: the first branch that holds.
                        chain = [(inner, value)]
                        while i < len(items) and isinstance(items[i][0], str) and (
                                items[i][0].strip()[3:-2].strip().startswith("elseif ") or
                                items[i][0].strip()[3:-2].strip() == "else"):
                            chain.append((items[i][0].strip()[3:-2].strip(), items[i][1]))
                            i += 1
                        for cond, body in chain:
                            if cond == "else" or truthy(self.eval(cond.split(" ", 1)[1], parameters, extra)):
                                if body is not None:
                                    got = self.expand(body, parameters, base, extra)
                                    if not isinstance(got, dict):
                                        raise ReplayError(f"{k}: a mapping's conditional must hold a mapping")
                                    out.update(got)
                                break
                        continue
                    m = re.match(r"each\s+(\w+)\s+in\s+(.+)$", inner)
                    if m:
                        for item in self.iterate(m.group(2), parameters, extra):
                            got = self.expand(value, parameters, base, {**(extra or {}), m.group(1): item})
                            if not isinstance(got, dict):
                                raise ReplayError(f"{k}: a mapping's each must hold a mapping")
                            out.update(got)
                        continue
                    raise ExprError(f"template directive {k!r} is not supported by the replay")
                out_key = self.expand(key, parameters, base, extra) if isinstance(key, str) else key
                if isinstance(out_key, str) and out_key in out:
                    raise ReplayError(f"key {out_key!r} appears twice after template expansion")
                out[to_string(out_key, DIALECT) if not isinstance(out_key, str) else out_key] = \
                    self.expand(value, parameters, base, extra)
            return out
        if isinstance(node, list):
            out = []
            for item in node:
                if isinstance(item, dict) and len(item) == 1:
                    (key, value), = item.items()
                    k = key.strip() if isinstance(key, str) else key
                    if isinstance(k, str) and k.startswith("${{") and k.endswith("}}"):
                        inner = k[3:-2].strip()
                        m = re.match(r"each\s+(\w+)\s+in\s+(.+)$", inner)
                        if inner.startswith("if "):
                            if truthy(self.eval(inner[3:], parameters, extra)):
                                got = self.expand(value, parameters, base, extra)
                                out.extend(got if isinstance(got, list) else [got])
                            continue
                        if m:
                            for it in self.iterate(m.group(2), parameters, extra):
                                got = self.expand(value, parameters, base, {**(extra or {}), m.group(1): it})
                                out.extend(got if isinstance(got, list) else [got])
                            continue
                        raise ExprError(f"template directive {k!r} is not supported by the replay")
                if isinstance(item, dict) and "template" in item:
                    out.extend(self.include(item, parameters, base, extra))
                    continue
                out.append(self.expand(item, parameters, base, extra))
            return out
        if isinstance(node, str):
            if "${{" not in node:
                return node
            return interpolate(node, self.ctx(parameters, extra))
        return node

    def eval(self, text, parameters, extra):
        return evaluate(parse(text, DIALECT), self.ctx(parameters, extra))

    def iterate(self, text, parameters, extra):
        coll = self.eval(text, parameters, extra)
        if isinstance(coll, Strict):
            coll = coll.to_plain()
        if isinstance(coll, dict):
            return [{"key": k, "value": v} for k, v in coll.items()]
        if isinstance(coll, list):
            return coll
        if coll is None:
            return []
        raise ExprError(f"each over {text!r}: not a list or mapping")

    def include(self, item, parameters, base, extra):
        ref = self.expand(item["template"], parameters, base, extra)
        if "@" in ref:
            raise ReplayError(f"template {ref}: templates from other repositories are not replayed")
        path = os.path.normpath(os.path.join(base, ref))
        args = self.expand(item.get("parameters") or {}, parameters, base, extra)
        unknown = set(item) - {"template", "parameters"}
        if unknown:
            raise ReplayError(f"template {ref}: unexpected keys {sorted(unknown)}")
        doc = load_yaml(path)
        params = bind_parameters(doc.get("parameters") or [], args, f"template {ref}")
        body = {k: v for k, v in doc.items() if k != "parameters"}
        if list(body) not in (["steps"], ["jobs"], ["stages"]):
            raise ReplayError(f"template {ref}: expected one of steps, jobs or stages, got {list(body)}")
        (kind, content), = body.items()
        got = self.expand(content, params, os.path.dirname(path))
        return got or []


def bind_parameters(declared, given, where):
    """Template or runtime parameters: defaults, types, allowed values, unknown names."""
    if isinstance(declared, dict):  # the old form: name: default
        declared = [{"name": k, "default": v} for k, v in declared.items()]
    out, names = {}, set()
    for p in declared:
        name = p["name"]
        names.add(name)
        if name in given:
            value = given[name]
        elif "default" in p:
            value = p["default"]
        else:
            raise ReplayError(f"{where}: parameter {name} is required")
        ptype = p.get("type", "string")
        if ptype == "string":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ReplayError(f"{where}: parameter {name} is a string, got {value!r} (quote it)")
            value = to_string(value, DIALECT)
        elif ptype == "boolean":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"
            if not isinstance(value, bool):
                raise ReplayError(f"{where}: parameter {name} is a boolean, got {value!r}")
        elif ptype == "number":
            if isinstance(value, str):
                try:
                    value = float(value) if "." in value else int(value)
                except ValueError:
                    raise ReplayError(f"{where}: parameter {name} is a number, got {value!r}") from None
        elif ptype in ("object", "step", "stepList", "job", "jobList", "stage", "stageList"):
            pass
        else:
            raise ReplayError(f"{where}: parameter type {ptype} is not supported by the replay")
        if "values" in p and value not in p["values"]:
            raise ReplayError(f"{where}: parameter {name}={value!r} is not one of {p['values']}")
        out[name] = value
    extra = set(given) - names
    if extra:
        raise ReplayError(f"{where}: unexpected parameter(s) {sorted(extra)}")
    return out


def variables_of(node, where):
    """A variables: block as (name, value, is_runtime_expression) entries, in order."""
    if node is None:
        return []
    if isinstance(node, dict):
        items = list(node.items())
    else:
        items = []
        for v in node:
            if "group" in v or "template" in v:
                raise ReplayError(f"{where}: variable groups and variable templates are not replayed")
            items.append((v["name"], v.get("value", "")))
    out = []
    for name, value in items:
        value = to_string(value, DIALECT) if not isinstance(value, str) else value
        m = re.fullmatch(r"\s*\$\[(.*)\]\s*", value, re.S)
        out.append((name, m.group(1).strip() if m else value, bool(m)))
    return out


# ---------------------------------------------------------------------------------------------
# Run time

class Replay:
    """One run of one pipeline."""

    def __init__(self, workplace, pipeline_file, parameters, queue_variables, secret_variables,
                 run_number, skip_jobs=()):
        self.wp = workplace
        self.skip_jobs = set(skip_jobs)
        self.file = pipeline_file
        self.run_number = run_number
        self.queue_variables = dict(queue_variables)
        self.secret_variables = dict(secret_variables)
        self.given_parameters = parameters
        self.stage_results = {}
        self.job_results = {}   # "Stage.Job" -> result
        self.job_outputs = {}   # "Stage.Job" -> {output name: value}
        self.artifacts = {}     # name -> producing "Stage.Job"
        self.pending = []       # steps not replayed (PENDING_MANIFESTS)
        self.outputs_read = []  # (reader, reference, value)

    # Variables every job sees, and their environment names.
    def predefined(self, agent):
        ws = os.path.join(agent, "work", "1")
        return {
            "Agent.OS": "Linux",
            "Agent.TempDirectory": os.path.join(agent, "work", "_temp"),
            "Agent.BuildDirectory": ws,
            "Pipeline.Workspace": ws,
            "Build.SourcesDirectory": os.path.join(ws, "s"),
            "Build.ArtifactStagingDirectory": os.path.join(ws, "a"),
            "Build.BinariesDirectory": os.path.join(ws, "b"),
            "System.DefaultWorkingDirectory": os.path.join(ws, "s"),
            "Build.BuildId": str(1000 + self.run_number),
            "Build.BuildNumber": f"replay.{self.run_number}",
            "Build.SourceBranch": f"refs/heads/{self.wp.branch}",
            "Build.SourceBranchName": self.wp.branch,
            "Build.SourceVersion": self.wp.commit,
            "Build.Reason": "Manual",
            "Build.Repository.Uri": "https://dev.azure.com/replay/mlstage/_git/mlstage",
            "Build.Repository.Name": "mlstage",
            "Build.RequestedFor": "mlstage replay",
            "System.CollectionUri": "https://dev.azure.com/replay/",
            "System.TeamProject": "mlstage",
            "System.TeamProjectId": "00000000-0000-4000-8000-00000000aaaa",
            "System.JobAttempt": "1",
            "TF_BUILD": "True",
        }

    @staticmethod
    def env_name(name):
        return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()

    def compile(self):
        doc = load_yaml(self.file)
        params = bind_parameters(doc.get("parameters") or [], self.given_parameters, "pipeline")
        root_vars = variables_of(doc.get("variables"), "pipeline variables")
        if any(rt for _, _, rt in root_vars):
            raise ReplayError("pipeline variables with $[ ] are not replayed")
        compiler = Compiler({"Build.SourceBranch": f"refs/heads/{self.wp.branch}",
                             "Build.SourceBranchName": self.wp.branch, "Build.Reason": "Manual"},
                            {n: v for n, v, _ in root_vars})
        base = os.path.dirname(self.file)
        body = {k: v for k, v in doc.items() if k not in ("parameters",)}
        expanded = compiler.expand(body, params, base)
        self.root_variables = {n: compiler.expand(v, params, base) for n, v, _ in root_vars}
        if "stages" in expanded:
            stages = expanded["stages"]
        elif "jobs" in expanded:
            stages = [{"stage": "__default", "jobs": expanded["jobs"]}]
        else:
            stages = [{"stage": "__default", "jobs": [{"job": "__default", "steps": expanded.get("steps", [])}]}]
        self.stages = stages
        self.doc = expanded
        return expanded

    # -- conditions -------------------------------------------------------------------------

    def stage_context(self, stage, deps):
        depmap = {}
        for d in deps:
            outputs = {}
            for job, outs in self.stage_job_outputs(d).items():
                for k, v in outs.items():
                    outputs[f"{job}.{k}"] = v
            depmap[d] = Strict({"result": self.stage_results[d],
                                "outputs": Strict(outputs, f"outputs of stage {d} (<job>.<step>.<name>)")},
                               f"properties of stage {d}")
        variables = Loose({**self.queue_variables, **self.root_variables,
                           **self.predefined(self.wp.agent)}, "variables")
        results = [self.stage_results[d] for d in deps]
        return Context(DIALECT, {
            "dependencies": Strict(depmap, f"stages stage {stage} depends on"),
            "variables": variables,
        }, status=self.status_functions(results), where=f"condition of stage {stage}")

    def stage_job_outputs(self, stage):
        return {key.split(".", 1)[1]: v for key, v in self.job_outputs.items() if key.split(".", 1)[0] == stage}

    @staticmethod
    def status_functions(results):
        return {
            "succeeded": lambda: all(r == SUCCEEDED for r in results),
            "failed": lambda: any(r == FAILED for r in results),
            "succeededorfailed": lambda: True,
            "always": lambda: True,
            "canceled": lambda: False,
        }

    def job_context(self, stage, stage_deps, job, job_deps, variables):
        depmap = {}
        for d in job_deps:
            depmap[d] = Strict({"result": self.job_results[f"{stage}.{d}"],
                                "outputs": Strict(self.job_outputs.get(f"{stage}.{d}", {}),
                                                  f"outputs of job {d} (<step>.<name>)")},
                               f"properties of job {d}")
        stagedeps = {}
        for s in stage_deps:
            jobs = {}
            for j, outs in self.stage_job_outputs(s).items():
                jobs[j] = Strict({"outputs": Strict(outs, f"outputs of job {s}.{j} (<step>.<name>)"),
                                  "result": self.job_results[f"{s}.{j}"]}, f"properties of job {s}.{j}")
            stagedeps[s] = Strict(jobs, f"jobs of stage {s}")
        results = [self.job_results[f"{stage}.{d}"] for d in job_deps]
        return Context(DIALECT, {
            "dependencies": Strict(depmap, f"jobs job {job} depends on"),
            "stageDependencies": Strict(stagedeps, f"stages stage {stage} depends on"),
            "variables": Loose(variables, "variables"),
        }, status=self.status_functions(results), where=f"job {stage}.{job}")

    def cond(self, text, ctx, what):
        text = to_string(text, DIALECT) if not isinstance(text, str) else text
        try:
            value = evaluate(parse(text, DIALECT), ctx)
        except ReplayError as e:
            raise ReplayError(f"{what}: condition {text.strip()!r}: {e}") from None
        return truthy(value)

    # -- the run --------------------------------------------------------------------------------

    def run(self):
        self.compile()
        names = [s["stage"] for s in self.stages]
        if len(set(names)) != len(names):
            raise ReplayError("stage names are not unique")
        prev = None
        for s in self.stages:
            deps = s.get("dependsOn", [prev] if prev else [])
            deps = [deps] if isinstance(deps, str) else list(deps or [])
            for d in deps:
                if d not in self.stage_results:
                    raise ReplayError(f"stage {s['stage']} depends on {d}, which is not an earlier stage")
            prev = s["stage"]
            self.run_stage(s, deps)
        return self

    def run_stage(self, stage, deps):
        name = stage["stage"]
        ctx = self.stage_context(name, deps)
        condition = stage.get("condition", "succeeded()")
        if not self.cond(condition, ctx, f"stage {name}"):
            log(f"== stage {name}: skipped (condition {' '.join(str(condition).split())})")
            self.stage_results[name] = SKIPPED
            for job in stage.get("jobs", []):
                self.job_results[f"{name}.{job.get('job') or job.get('deployment')}"] = SKIPPED
            return
        log(f"== stage {name}")
        stage_vars = variables_of(stage.get("variables"), f"stage {name}")
        if any(rt for _, _, rt in stage_vars):
            raise ReplayError(f"stage {name}: stage variables with $[ ] are not replayed")
        stage_variables = {n: v for n, v, _ in stage_vars}
        done = []
        for job in stage.get("jobs", []):
            jname = job.get("job") or job.get("deployment")
            if not jname:
                raise ReplayError(f"stage {name}: a job without job: or deployment:")
            jdeps = job.get("dependsOn", [])
            jdeps = [jdeps] if isinstance(jdeps, str) else list(jdeps or [])
            for d in jdeps:
                if d not in done:
                    raise ReplayError(f"job {name}.{jname} depends on {d}, which is not an earlier job of the stage")
            self.run_job(name, deps, job, jname, jdeps, stage_variables)
            done.append(jname)
        results = [self.job_results[f"{name}.{j}"] for j in done]
        if any(r == FAILED for r in results):
            self.stage_results[name] = FAILED
        elif results and all(r == SKIPPED for r in results):
            self.stage_results[name] = SKIPPED
        else:
            self.stage_results[name] = SUCCEEDED

    def run_job(self, stage, stage_deps, job, jname, jdeps, stage_variables):
        key = f"{stage}.{jname}"
        if key in self.skip_jobs:
            log(f"-- job {key}: not replayed (--skip-job)")
            self.job_results[key] = SKIPPED
            return
        if "strategy" in job and job.get("job"):
            strategy = job["strategy"]
            if set(strategy) - {"matrix", "maxParallel"} or not isinstance(strategy.get("matrix"), dict):
                raise ReplayError(f"job {key}: only a matrix of named legs is replayed")
            results, outputs = [], {}
            for leg, leg_vars in strategy["matrix"].items():
                one = {k: v for k, v in job.items() if k != "strategy"}
                one["variables"] = {**{n: v for n, v, _ in variables_of(job.get("variables"), key)},
                                    **{k: to_string(v, DIALECT) for k, v in (leg_vars or {}).items()}}
                self.run_job(stage, stage_deps, one, f"{jname}.{leg}", jdeps, stage_variables)
                results.append(self.job_results.pop(f"{stage}.{jname}.{leg}"))
                for k, v in self.job_outputs.pop(f"{stage}.{jname}.{leg}", {}).items():
                    outputs[f"{leg}.{k}"] = v
            self.job_results[key] = FAILED if FAILED in results else (
                SKIPPED if all(r == SKIPPED for r in results) else SUCCEEDED)
            self.job_outputs[key] = outputs
            return
        base_vars = {**self.queue_variables, **self.root_variables, **stage_variables,
                     **self.predefined(self.wp.agent)}
        ctx = self.job_context(stage, stage_deps, jname, jdeps, base_vars)
        condition = job.get("condition", "succeeded()")
        if not self.cond(condition, ctx, f"job {key}"):
            log(f"-- job {key}: skipped (condition {' '.join(str(condition).split())})")
            self.job_results[key] = SKIPPED
            return
        deployment = "deployment" in job
        env_name = job.get("environment")
        if deployment:
            env_name = env_name.get("name") if isinstance(env_name, dict) else env_name
            log(f"-- deployment job {key} on environment {env_name} (its checks: approved by the replay)")
        else:
            log(f"-- job {key}")
        variables = dict(base_vars)
        for vname, value, runtime in variables_of(job.get("variables"), f"job {key}"):
            if runtime:
                try:
                    got = evaluate(parse(value, DIALECT), ctx)
                except ReplayError as e:
                    raise ReplayError(f"job {key}: variable {vname}: $[ {value} ]: {e}") from None
                variables[vname] = to_string(got, DIALECT)
                self.outputs_read.append((key, value, variables[vname]))
                log(f"   variable {vname} = {variables[vname]!r}   <- $[ {value} ]")
            else:
                variables[vname] = value
        if deployment:
            strategy = job.get("strategy") or {}
            if list(strategy) != ["runOnce"]:
                raise ReplayError(f"deployment job {key}: only the runOnce strategy is replayed")
            hooks = strategy["runOnce"]
            if set(hooks) - {"deploy"}:
                raise ReplayError(f"deployment job {key}: only the deploy hook is replayed, not {sorted(set(hooks) - {'deploy'})}")
            steps = hooks["deploy"].get("steps", [])
            output_prefix = f"{jname}."
        else:
            steps = job.get("steps", [])
            output_prefix = ""
            # A job checks out its repository first unless it says otherwise.
            if not any("checkout" in s for s in steps):
                steps = [{"checkout": "self"}] + steps
        job_run = JobRun(self, key, variables, output_prefix)
        result = job_run.run(steps)
        self.job_results[key] = result
        self.job_outputs[key] = job_run.outputs
        log(f"   job {key}: {result}; outputs: {', '.join(sorted(job_run.outputs)) or 'none'}")


class JobRun:
    """One job on a fresh agent: its steps, variables and output variables."""

    def __init__(self, replay, key, variables, output_prefix):
        self.replay = replay
        self.wp = replay.wp
        self.key = key
        self.agent = self.wp.fresh_agent()
        self.pre = replay.predefined(self.agent)
        for d in ("Agent.TempDirectory", "Pipeline.Workspace", "Build.ArtifactStagingDirectory",
                  "Build.BinariesDirectory"):
            os.makedirs(self.pre[d], exist_ok=True)
        self.variables = dict(variables)  # name -> value (case-insensitive on lookup)
        self.variables.update(self.pre)
        self.secrets = dict(replay.secret_variables)
        self.outputs = {}
        self.output_prefix = output_prefix
        self.path_prepend = []
        self.step_names = set()
        self.post = []  # post-job actions
        self.failed = False
        self.scripts = 0
        self.unnamed_outputs = 0

    def lookup(self, name):
        for table in (self.variables, self.secrets):
            for k, v in table.items():
                if k.lower() == name.lower():
                    return v
        return None

    def macro(self, text, where):
        """$(name) expansion as the agent does it: one pass; an unknown name fails the replay."""
        if not isinstance(text, str):
            return to_string(text, DIALECT)

        def sub(m):
            value = self.lookup(m.group(1))
            if value is None:
                if "." in m.group(1) and m.group(1).split(".")[0] in self.step_names:
                    raise ReplayError(f"{where}: $({m.group(1)}): step {m.group(1).split('.')[0]} wrote no "
                                      f"output {m.group(1).split('.', 1)[1]} (outputs of this job so far: "
                                      f"{', '.join(sorted(self.outputs)) or 'none'})")
                raise ReplayError(f"{where}: $({m.group(1)}) is not a variable the agent would know "
                                  f"(it would stay as text)")
            return value
        return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)", sub, text)

    def env(self):
        env = {}
        for k, v in self.variables.items():
            env[Replay.env_name(k)] = v
        env = clean_env(env)
        if self.path_prepend:
            env["PATH"] = ":".join(reversed(self.path_prepend)) + ":" + env["PATH"]
        env["HOME"] = os.path.join(self.agent, "home")
        os.makedirs(env["HOME"], exist_ok=True)
        return env

    def run(self, steps):
        for index, step in enumerate(steps):
            self.run_step(index, step)
        for action in self.post:
            action(not self.failed)
        return FAILED if self.failed else SUCCEEDED

    def run_step(self, index, step):
        label = step.get("displayName") or step.get("name") or next(iter(step))
        label = self.macro(label, f"{self.key} step {index}") if isinstance(label, str) else label
        name = step.get("name")
        if name:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ReplayError(f"{self.key}: step name {name!r} is not a valid identifier")
            if name in self.step_names:
                raise ReplayError(f"{self.key}: two steps are named {name}")
            self.step_names.add(name)
        condition = step.get("condition", "succeeded()")
        ctx = Context(DIALECT, {"variables": Loose({**self.variables}, "variables")},
                      status={"succeeded": lambda: not self.failed, "failed": lambda: self.failed,
                              "succeededorfailed": lambda: True, "always": lambda: True,
                              "canceled": lambda: False}, where=f"{self.key} step {label}")
        if not self.replay.cond(condition, ctx, f"{self.key} step {label!r}"):
            log(f"   step {label}: skipped ({' '.join(str(condition).split())})")
            return
        where = f"{self.key} step {label!r}"
        if "checkout" in step:
            if step["checkout"] == "none":
                log(f"   step checkout: none")
                return
            if step["checkout"] != "self":
                raise ReplayError(f"{where}: only checkout: self is replayed")
            log(f"   step checkout: self -> {self.pre['Build.SourcesDirectory']}")
            self.wp.checkout(self.pre["Build.SourcesDirectory"])
            return
        for kind in ("bash", "script"):
            if kind in step:
                self.run_bash(step, kind, name, label, where)
                return
        if "task" in step:
            self.run_task(step, name, label, where)
            return
        raise ReplayError(f"{where}: step kind {sorted(step)} is not replayed")

    def step_env(self, step, where):
        env = self.env()
        for k, v in (step.get("env") or {}).items():
            env[k] = self.macro(to_string(v, DIALECT) if not isinstance(v, str) else v, f"{where} env {k}")
        return env

    def run_bash(self, step, kind, name, label, where):
        script = self.macro(step[kind], where)
        env = self.step_env(step, where)
        cwd = self.macro(step.get("workingDirectory", self.pre["System.DefaultWorkingDirectory"]), where)
        task = env.get("STAGE_TASK")
        if task:
            reason = pending_manifest(cwd, task)
            if reason:
                log(f"   step {label}: NOT REPLAYED: {reason}")
                self.replay.pending.append((self.key, label, reason))
                return
        log(f"   step {label}" + (f" (name: {name})" if name else ""))
        self.scripts += 1
        path = os.path.join(self.pre["Agent.TempDirectory"], f"script-{self.scripts}.sh")
        with open(path, "w") as f:
            f.write(script)
        code, out = run_script(["bash", "--noprofile", "--norc", path], cwd, env, where)
        self.commands(out, name, where)
        if code != 0:
            log(f"   step {label}: FAILED (exit {code})")
            self.failed = True

    def commands(self, out, step_name, where):
        """What the agent does with the step's ##vso lines."""
        for line in out.splitlines():
            cmd = parse_vso(line)
            if not cmd:
                continue
            event, props, data = cmd
            if event == "task.setvariable":
                var = props.get("variable")
                if not var:
                    raise ReplayError(f"{where}: task.setvariable without variable=")
                if is_true(props.get("isoutput", "false")):
                    if not step_name:
                        # The agent names such a step itself; no expression can name it back.
                        self.unnamed_outputs += 1
                        continue
                    full = f"{step_name}.{var}"
                    self.outputs[f"{self.output_prefix}{full}"] = data
                    self.variables[full] = data
                elif is_true(props.get("issecret", "false")):
                    self.secrets[var] = data
                else:
                    self.variables[var] = data
            elif event == "task.prependpath":
                self.path_prepend.append(data)
            elif event == "task.uploadsummary":
                if not os.path.isabs(data) or not os.path.isfile(data):
                    raise ReplayError(f"{where}: task.uploadsummary names {data!r}, not an existing absolute path")
            elif event in ("task.logissue", "task.setsecret", "task.logdetail", "task.setprogress"):
                pass
            else:
                raise ReplayError(f"{where}: logging command {event} is not one the replay knows")

    # -- tasks ------------------------------------------------------------------------------------

    def inputs(self, step, where, aliases):
        raw = step.get("inputs") or {}
        out = {}
        for k, v in raw.items():
            canon = aliases.get(k.lower(), k)
            out[canon] = self.macro(to_string(v, DIALECT) if not isinstance(v, str) else v, f"{where} input {k}")
        return out

    def run_task(self, step, name, label, where):
        task = step["task"]
        if task == "Cache@2":
            inp = self.inputs(step, where, {"key": "key", "path": "path", "cachehitvar": "cacheHitVar",
                                            "restorekeys": "restoreKeys"})
            key = self.cache_key(inp["key"], where)
            path = inp["path"]
            hit = self.wp.cache_restore(key, path)
            log(f"   step {label}: Cache@2 key {key!r}: {'restored' if hit else 'miss'} -> {path}")
            if inp.get("cacheHitVar"):
                self.variables[inp["cacheHitVar"]] = "true" if hit else "false"
            if not hit:
                def save(ok, key=key, path=path, label=label):
                    if ok and os.path.isdir(path):
                        saved = self.wp.cache_save(key, path)
                        log(f"   post-job {label}: Cache@2 {'saved' if saved else 'already saved'} {key!r}")
                self.post.append(save)
            return
        if task == "AzureCLI@2":
            inp = self.inputs(step, where, {"azuresubscription": "azureSubscription", "connectedservicenamearm": "azureSubscription",
                                            "scripttype": "scriptType", "scriptlocation": "scriptLocation",
                                            "inlinescript": "inlineScript", "addspntoenvironment": "addSpnToEnvironment"})
            conn = (step.get("inputs") or {}).get("azureSubscription", "")
            if not inp.get("azureSubscription") or "$(" in str(conn):
                raise ReplayError(f"{where}: AzureCLI@2 needs a service connection known at compile time, got {conn!r}")
            if inp.get("scriptType") != "bash" or inp.get("scriptLocation") != "inlineScript":
                raise ReplayError(f"{where}: only AzureCLI@2 bash inline scripts are replayed")
            env = self.step_env(step, where)
            if is_true(inp.get("addSpnToEnvironment", "false")):
                # What the task gives a script for a workload identity federation connection.
                env.update({"servicePrincipalId": "11111111-2222-4333-8444-555555555555",
                            "tenantId": "66666666-7777-4888-9999-000000000000",
                            "idToken": fake_jwt(f"sc://replay/mlstage/{inp['azureSubscription']}")})
            log(f"   step {label}: AzureCLI@2 with service connection {inp['azureSubscription']} "
                f"(signed in by the replay: a federated connection's identity, no az login)")
            path = os.path.join(self.pre["Agent.TempDirectory"], "azurecli-inline.sh")
            with open(path, "w") as f:
                f.write(inp["inlineScript"])
            code, out = run_script(["bash", "--noprofile", "--norc", path],
                                   self.pre["System.DefaultWorkingDirectory"], env, where)
            self.commands(out, name, where)
            if code != 0:
                log(f"   step {label}: FAILED (exit {code})")
                self.failed = True
            return
        if task == "PublishPipelineArtifact@1":
            inp = self.inputs(step, where, {"targetpath": "targetPath", "path": "targetPath",
                                            "artifact": "artifact", "artifactname": "artifact"})
            src, art = inp.get("targetPath"), inp.get("artifact")
            if not src or not art:
                raise ReplayError(f"{where}: PublishPipelineArtifact@1 needs targetPath and artifact")
            if art in self.replay.artifacts:
                raise ReplayError(f"{where}: artifact {art} was already published by {self.replay.artifacts[art]}")
            if not os.path.exists(src):
                log(f"   step {label}: FAILED: {src} does not exist")
                self.failed = True
                return
            dest = self.wp.artifact_dir(self.replay.run_number, art)
            shutil.copytree(src, dest, symlinks=True) if os.path.isdir(src) else shutil.copy2(src, dest)
            self.replay.artifacts[art] = self.key
            log(f"   step {label}: published {src} as artifact {art}")
            return
        if task == "DownloadPipelineArtifact@2":
            inp = self.inputs(step, where, {"buildtype": "buildType", "source": "buildType",
                                            "artifactname": "artifactName", "artifact": "artifactName",
                                            "targetpath": "targetPath", "path": "targetPath", "downloadpath": "targetPath"})
            if inp.get("buildType", "current") != "current":
                raise ReplayError(f"{where}: only artifacts of the current run are replayed")
            art = inp.get("artifactName")
            if not art:
                raise ReplayError(f"{where}: DownloadPipelineArtifact@2 without artifactName downloads every artifact; name it")
            if art not in self.replay.artifacts:
                raise ReplayError(f"{where}: artifact {art} was not published by any job that ran before this one")
            dest = inp.get("targetPath") or self.pre["Pipeline.Workspace"]
            src = self.wp.artifact_dir(self.replay.run_number, art)
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            log(f"   step {label}: downloaded artifact {art} (from {self.replay.artifacts[art]}) -> {dest}")
            return
        raise ReplayError(f"{where}: task {task} is not replayed")

    def cache_key(self, key, where):
        parts = []
        for seg in key.split("|"):
            seg = seg.strip()
            if len(seg) >= 2 and seg[0] == seg[-1] == '"':
                parts.append(seg[1:-1])
            else:
                raise ReplayError(f"{where}: cache key segment {seg!r}: the replay takes quoted strings only "
                                  f"(file segments are hashed by the task)")
        if any(not p for p in parts):
            raise ReplayError(f"{where}: cache key {key!r} has an empty segment")
        return " | ".join(parts)


def summary(replay):
    return {"stages": dict(replay.stage_results), "jobs": dict(replay.job_results),
            "outputs": {k: dict(v) for k, v in replay.job_outputs.items()}}
