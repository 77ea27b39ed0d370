"""github_actions.py — replays a GitHub Actions workflow the way the runner runs it.

Jobs in `needs` order with their `if:` (an implicit success() when no status function is
given), job outputs, composite actions (inputs, defaults, their own steps and outputs), the
contexts the pipelines use (github, inputs, secrets, env, needs, steps, runner, job), `${{ }}`
substituted into run scripts as the runner does, each job on a fresh runner, and the runner's
file commands read the way the runner reads them: $GITHUB_OUTPUT and $GITHUB_ENV (NAME=VALUE
and NAME<<DELIMITER ... DELIMITER), $GITHUB_PATH — a fresh file per step.

A reference to an output nobody wrote — needs.<job>.outputs.<x> of an undeclared output,
steps.<id>.outputs.<x> a step did not write, an action output whose step did not write it —
fails the replay, where the real runner would quietly give ''.
"""

import json
import os
import re
import shutil

from common import ReplayError, clean_env, fake_jwt, load_yaml, log, pending_manifest, run_script
from expr import Context, Lazy, Strict, evaluate, find_templates, interpolate, parse, to_string, truthy

DIALECT = "github"
SUCCESS, FAILURE, SKIPPED = "success", "failure", "skipped"
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


def parse_file_commands(path):
    """$GITHUB_OUTPUT / $GITHUB_ENV as the runner reads them (FileCommandManager)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    out = {}
    pos = 0

    def read_line():
        nonlocal pos
        if pos >= len(text):
            return None, None
        nl = text.find("\n", pos)
        if nl < 0:
            line, newline, pos = text[pos:], None, len(text)
        else:
            end = nl - 1 if nl > pos and text[nl - 1] == "\r" else nl
            line, newline, pos = text[pos:end], text[end:nl + 1], nl + 1
        return line, newline

    while True:
        line, _ = read_line()
        if line is None:
            return out
        if line == "":
            continue
        eq, hd = line.find("="), line.find("<<")
        if eq >= 0 and (hd < 0 or eq < hd):
            key, value = line.split("=", 1)
            if not key:
                raise ReplayError(f"{path}: invalid line {line!r} (empty name)")
        elif hd >= 0 and (eq < 0 or hd < eq):
            key, delim = line.split("<<", 1)
            if not key or not delim:
                raise ReplayError(f"{path}: invalid heredoc line {line!r}")
            start = end = pos
            temp, newline = read_line()
            while temp != delim:
                if temp is None:
                    raise ReplayError(f"{path}: no closing delimiter {delim!r} for {key}")
                if newline is None:
                    raise ReplayError(f"{path}: the value of {key} does not end with a newline before its delimiter")
                end = pos - len(newline)
                temp, newline = read_line()
            value = text[start:end] if end > start else ""
        else:
            raise ReplayError(f"{path}: invalid line {line!r}")
        out[key] = value


def has_status_function(text):
    return any(re.search(rf"\b{f}\s*\(", text, re.I) for f in STATUS_FUNCTIONS)


def condition_text(value):
    """An if: value as an expression (the ${{ }} around it is optional)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    spans = find_templates(text)
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(text):
        return spans[0][2].strip()
    if spans:
        raise ReplayError(f"if: {text!r} mixes text and ${{{{ }}}}: the runner would take it as a (true) string")
    return text


class WorkflowRun:
    def __init__(self, workplace, workflow_file, inputs, secrets, run_number, event="workflow_dispatch",
                 skip_jobs=()):
        self.wp = workplace
        self.event = event
        self.skip_jobs = set(skip_jobs)
        self.file = workflow_file
        self.given_inputs = dict(inputs)
        self.secrets = dict(secrets)
        self.run_number = run_number
        self.results = {}        # job id -> success/failure/skipped
        self.outputs = {}        # job id -> {name: value}
        self.artifacts = {}      # name -> job id
        self.pending = []
        self.outputs_read = []

    def github(self, workspace, job=None, action_path=None):
        pr = self.event == "pull_request"
        g = {
            "event_name": self.event,
            "ref": "refs/pull/1/merge" if pr else f"refs/heads/{self.wp.branch}",
            "ref_name": "1/merge" if pr else self.wp.branch,
            "head_ref": "replay" if pr else "",
            "base_ref": self.wp.branch if pr else "",
            "ref_type": "branch",
            "sha": self.wp.commit,
            "repository": "replay/mlstage",
            "repository_owner": "replay",
            "run_id": str(7000 + self.run_number),
            "run_number": str(self.run_number),
            "run_attempt": "1",
            "server_url": "https://github.com",
            "api_url": "https://api.github.com",
            "workspace": workspace,
            "workflow": self.doc.get("name", ""),
            "actor": "mlstage-replay",
            "job": job or "",
            "event": ({"pull_request": {"number": 1, "head": {"ref": "replay"}, "base": {"ref": self.wp.branch}}}
                      if pr else {"inputs": dict(self.inputs)}),
        }
        if action_path:
            g["action_path"] = action_path
        return Strict(g, "properties of the github context")

    def run(self):
        self.doc = load_yaml(self.file)
        on = self.doc.get("on") or {}
        if isinstance(on, str):
            on = {on: None}
        elif isinstance(on, list):
            on = {e: None for e in on}
        if self.event not in on:
            raise ReplayError(f"the workflow does not run on {self.event}")
        declared = ((on.get("workflow_dispatch") or {}).get("inputs") or {}) if self.event == "workflow_dispatch" else {}
        self.inputs = {}
        for name, spec in declared.items():
            value = self.given_inputs.get(name, spec.get("default", ""))
            if spec.get("type") == "choice" and str(value) not in [str(o) for o in spec.get("options", [])]:
                raise ReplayError(f"input {name}={value!r} is not one of {spec.get('options')}")
            self.inputs[name] = value if spec.get("type") == "boolean" else to_string(value, DIALECT)
        unknown = set(self.given_inputs) - set(declared)
        if unknown:
            raise ReplayError(f"the workflow declares no input(s) {sorted(unknown)}")
        self.permissions = self.doc.get("permissions", {})
        conc = self.doc.get("concurrency")
        if conc:
            group = conc.get("group") if isinstance(conc, dict) else conc
            ctx = Context(DIALECT, {"github": self.github(""), "inputs": Strict(self.inputs, "workflow inputs"),
                                    "vars": Strict({}, "configuration variables")}, where="workflow concurrency")
            log(f"workflow concurrency group {to_string(interpolate(group, ctx), DIALECT)!r}")
        jobs = self.doc.get("jobs") or {}
        order = self.order(jobs)
        for job_id in order:
            self.run_job(job_id, jobs[job_id])
        return self

    @staticmethod
    def needs_of(job):
        needs = job.get("needs") or []
        return [needs] if isinstance(needs, str) else list(needs)

    def order(self, jobs):
        done, order = set(), []
        while len(order) < len(jobs):
            ready = [j for j in jobs if j not in done and all(n in done for n in self.needs_of(jobs[j]))]
            for j in jobs:
                for n in self.needs_of(jobs[j]):
                    if n not in jobs:
                        raise ReplayError(f"job {j} needs {n}, which is not a job of this workflow")
            if not ready:
                raise ReplayError("the jobs' needs form a cycle")
            for j in ready:
                done.add(j)
                order.append(j)
        return order

    def ancestors(self, job_id, jobs=None):
        jobs = jobs or self.doc["jobs"]
        seen, todo = set(), list(self.needs_of(jobs[job_id]))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.needs_of(jobs[n]))
        return seen

    def needs_context(self, job_id, job):
        needs = {}
        for n in self.needs_of(job):
            needs[n] = Strict({"result": self.results[n],
                               "outputs": Strict(self.outputs.get(n, {}), f"outputs job {n} declares")},
                              f"properties of needs.{n}")
        return Strict(needs, f"jobs that job {job_id} needs")

    def run_job(self, job_id, job):
        if job_id in self.skip_jobs:
            log(f"== job {job_id}: not replayed (--skip-job)")
            self.results[job_id] = SKIPPED
            return
        if "uses" in job:
            raise ReplayError(f"job {job_id}: reusable workflows are not replayed")
        ancestors = [self.results[a] for a in self.ancestors(job_id)]
        status = {
            "success": lambda: all(r == SUCCESS for r in ancestors),
            "failure": lambda: any(r == FAILURE for r in ancestors),
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        cond = condition_text(job.get("if", "success()"))
        if not has_status_function(cond):
            cond = f"success() && ({cond})"
        ctx = Context(DIALECT, {"github": self.github(""), "needs": self.needs_context(job_id, job),
                                "inputs": Strict(self.inputs, "workflow inputs"),
                                "vars": Strict({}, "configuration variables")},
                      status=status, where=f"if of job {job_id}")
        try:
            run = truthy(evaluate(parse(cond, DIALECT), ctx))
        except ReplayError as e:
            raise ReplayError(f"job {job_id}: if: {job.get('if')!r}: {e}") from None
        if not run:
            log(f"== job {job_id}: skipped (if: {job.get('if', 'success()')})")
            self.results[job_id] = SKIPPED
            return
        strategy = job.get("strategy")
        if not strategy:
            JobRun(self, job_id, job, {}).run()
            return
        matrix = strategy.get("matrix") or {}
        if set(strategy) - {"matrix", "fail-fast", "max-parallel"} or set(matrix) & {"include", "exclude"} \
                or not all(isinstance(v, list) for v in matrix.values()):
            raise ReplayError(f"job {job_id}: only a matrix of plain lists is replayed")
        legs = [{}]
        for key, values in matrix.items():
            legs = [{**leg, key: v} for leg in legs for v in values]
        results = []
        for leg in legs:
            JobRun(self, job_id, job, leg).run()
            results.append(self.results[job_id])
        self.results[job_id] = FAILURE if FAILURE in results else SUCCESS
        self.outputs[job_id] = {}


class JobRun:
    def __init__(self, wf, job_id, job, matrix):
        self.wf = wf
        self.matrix = matrix
        self.wp = wf.wp
        self.job_id = job_id
        self.job = job
        agent = self.wp.fresh_agent()
        self.workspace = os.path.join(agent, "work", "mlstage", "mlstage")
        self.temp = os.path.join(agent, "work", "_temp")
        self.home = os.path.join(agent, "home")
        for d in (self.workspace, self.temp, self.home):
            os.makedirs(d, exist_ok=True)
        self.env = {}       # workflow + job env, then $GITHUB_ENV additions
        self.path = []      # $GITHUB_PATH additions, newest first
        self.steps = {}     # id -> {"outputs": Strict, "outcome": ..., "conclusion": ...}
        self.failed = False
        self.post = []
        self.files = 0
        perms = job.get("permissions", wf.permissions)
        self.id_token = isinstance(perms, dict) and perms.get("id-token") == "write" or perms == "write-all"

    # -- contexts --------------------------------------------------------------------------------

    def base_names(self, env, steps, inputs=None, action_path=None):
        names = {
            "github": self.wf.github(self.workspace, self.job_id, action_path),
            "needs": self.wf.needs_context(self.job_id, self.job),
            "env": Strict(env, "environment variables set in the workflow, job and step"),
            "steps": Strict(steps, "steps that ran before, by id"),
            "runner": Strict({"os": "Linux", "arch": "X64", "temp": self.temp, "name": "replay",
                              "tool_cache": os.path.join(self.temp, "..", "_tool"), "environment": "github-hosted"},
                             "runner properties"),
            "job": Strict({"status": FAILURE if self.failed else SUCCESS}, "job properties"),
            "vars": Strict({}, "configuration variables"),
            "matrix": Strict(self.matrix, "matrix values of this job"),
        }
        if inputs is not None:
            names["inputs"] = Strict(inputs, "inputs of the action")
        else:
            names["inputs"] = Strict(self.wf.inputs, "workflow inputs")
            names["secrets"] = Strict({**self.wf.secrets, "GITHUB_TOKEN": "replay-github-token"},
                                      "secrets given to the replay")
        return names

    def context(self, env, steps, where, inputs=None, action_path=None):
        return Context(DIALECT, self.base_names(env, steps, inputs, action_path),
                       status={"success": lambda: not self.failed, "failure": lambda: self.failed,
                               "always": lambda: True, "cancelled": lambda: False}, where=where)

    def eval_text(self, value, ctx, where):
        if value is None:
            return ""
        if not isinstance(value, str):
            return to_string(value, DIALECT)
        try:
            return to_string(interpolate(value, ctx), DIALECT)
        except ReplayError as e:
            raise ReplayError(f"{where}: {value.strip()[:200]!r}: {e}") from None

    def eval_map(self, mapping, ctx, where):
        return {k: self.eval_text(v, ctx, f"{where}.{k}") for k, v in (mapping or {}).items()}

    # -- the job ---------------------------------------------------------------------------------

    def run(self):
        job_id, job = self.job_id, self.job
        env_name = job.get("environment")
        if isinstance(env_name, dict):
            env_name = env_name.get("name")
        leg = ", ".join(f"{k}={v}" for k, v in self.matrix.items())
        log(f"== job {job_id}" + (f" [{leg}]" if leg else "") + (f" on environment {env_name} (its protection rules: approved by the replay)"
                                  if env_name else ""))
        top = self.context({}, {}, f"workflow env")
        top.names.pop("steps")
        self.env.update(self.eval_map(self.wf.doc.get("env"), top, "env"))
        jctx = self.context(dict(self.env), {}, f"job {job_id} env")
        self.env.update(self.eval_map(job.get("env"), jctx, f"jobs.{job_id}.env"))
        conc = job.get("concurrency")
        if conc:
            group = conc.get("group") if isinstance(conc, dict) else conc
            log(f"   concurrency group {self.eval_text(group, jctx, f'jobs.{job_id}.concurrency')!r}")
        for index, step in enumerate(job.get("steps") or []):
            self.run_step(step, index, self.steps, None, None, f"jobs.{job_id}.steps[{index}]")
        for action in self.post:
            action(not self.failed)
        result = FAILURE if self.failed else SUCCESS
        outputs = {}
        if result == SUCCESS:
            ctx = self.context(dict(self.env), self.steps, f"outputs of job {job_id}")
            for name, expr in (job.get("outputs") or {}).items():
                outputs[name] = self.eval_text(expr, ctx, f"jobs.{job_id}.outputs.{name}")
                self.wf.outputs_read.append((job_id, expr, outputs[name]))
        self.wf.results[job_id] = result
        self.wf.outputs[job_id] = outputs
        log(f"   job {job_id}: {result}; outputs: " +
            (", ".join(f"{k}={v[:60]!r}" for k, v in outputs.items()) or "none"))

    def step_env(self, base_env, step_env, ctx, where, action_path=None):
        env = clean_env({})
        env.update({
            "HOME": self.home, "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": self.workspace, "GITHUB_SHA": self.wp.commit,
            "GITHUB_REF": "refs/pull/1/merge" if self.wf.event == "pull_request" else f"refs/heads/{self.wp.branch}",
            "GITHUB_REF_NAME": "1/merge" if self.wf.event == "pull_request" else self.wp.branch,
            "GITHUB_REPOSITORY": "replay/mlstage", "GITHUB_RUN_ID": str(7000 + self.wf.run_number),
            "GITHUB_RUN_NUMBER": str(self.wf.run_number), "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_EVENT_NAME": self.wf.event,
            "GITHUB_JOB": self.job_id, "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": self.temp,
        })
        if self.id_token:
            env["ACTIONS_ID_TOKEN_REQUEST_URL"] = "http://127.0.0.1:9/replay/idtoken?api-version=2.0"
            env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = fake_jwt("repo:replay/mlstage:ref:refs/heads/main")
        if action_path:
            env["GITHUB_ACTION_PATH"] = action_path
        env.update(base_env)
        env.update(self.eval_map(step_env, ctx, f"{where}.env"))
        if self.path:
            env["PATH"] = ":".join(self.path) + ":" + env["PATH"]
        if env.get("AZURE_CLIENT_ID") and not self.id_token:
            raise ReplayError(f"{where}: the step has AZURE_CLIENT_ID but job {self.job_id} lacks "
                              f"`permissions: id-token: write`: mlstage would get no OIDC token")
        return env

    def new_files(self):
        self.files += 1
        d = os.path.join(self.temp, "_runner_file_commands", str(self.files))
        os.makedirs(d)
        names = {"GITHUB_OUTPUT": "set_output", "GITHUB_ENV": "set_env", "GITHUB_PATH": "add_path",
                 "GITHUB_STEP_SUMMARY": "step_summary"}
        paths = {}
        for var, base in names.items():
            paths[var] = os.path.join(d, base)
            open(paths[var], "w").close()
        return paths

    def run_step(self, step, index, steps, inputs, action_path, where, caller_env=None):
        """One step (of the job, or of a composite action when inputs is not None)."""
        sid = step.get("id") or f"__step{index}"
        if sid in steps:
            raise ReplayError(f"{where}: two steps have the id {sid}")
        base_env = {**self.env, **(caller_env or {})}
        ctx = self.context(base_env, steps, where, inputs, action_path)
        label = step.get("name") or step.get("uses") or (step.get("run") or "").strip().split("\n")[0][:60]
        label = self.eval_text(label, ctx, f"{where}.name")
        cond = condition_text(step.get("if", "success()"))
        if not has_status_function(cond):
            cond = f"success() && ({cond})"
        try:
            go = truthy(evaluate(parse(cond, DIALECT), ctx))
        except ReplayError as e:
            raise ReplayError(f"{where}: if: {step.get('if')!r}: {e}") from None
        if not go:
            log(f"   step {label}: skipped (if: {step.get('if')})")
            steps[sid] = Strict({"outputs": Strict({}, f"outputs of step {sid}, which was skipped"),
                                 "outcome": SKIPPED, "conclusion": SKIPPED}, f"properties of steps.{sid}")
            return
        outputs, ok = {}, True
        if "run" in step:
            ok, outputs = self.run_run(step, ctx, base_env, where, label, inputs is not None, action_path)
        elif "uses" in step:
            ok, outputs = self.run_uses(step, ctx, base_env, where, label, action_path)
        else:
            raise ReplayError(f"{where}: a step needs run: or uses:")
        if not ok:
            self.failed = True
            log(f"   step {label}: FAILED")
        if not isinstance(outputs, Strict):
            outputs = Strict(outputs, f"outputs step {sid} wrote")
        steps[sid] = Strict({"outputs": outputs, "outcome": SUCCESS if ok else FAILURE,
                             "conclusion": SUCCESS if ok else FAILURE}, f"properties of steps.{sid}")

    def after_files(self, files):
        outputs = parse_file_commands(files["GITHUB_OUTPUT"])
        self.env.update(parse_file_commands(files["GITHUB_ENV"]))
        with open(files["GITHUB_PATH"]) as f:
            for line in f.read().splitlines():
                if line.strip():
                    self.path.insert(0, line.strip())
        return outputs

    def run_run(self, step, ctx, base_env, where, label, in_action, action_path):
        shell = step.get("shell")
        if in_action and not shell:
            raise ReplayError(f"{where}: a composite action's run step needs shell:")
        if shell in (None,):
            argv = ["bash", "-e"]
        elif shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
        else:
            raise ReplayError(f"{where}: shell {shell!r} is not replayed")
        script = self.eval_text(step["run"], ctx, f"{where}.run")
        files = self.new_files()
        env = self.step_env(base_env, step.get("env"), ctx, where, action_path)
        env.update(files)
        wd = self.eval_text(step.get("working-directory", "."), ctx, f"{where}.working-directory")
        cwd = os.path.normpath(os.path.join(self.workspace, wd))
        path = os.path.join(os.path.dirname(files["GITHUB_OUTPUT"]), "script.sh")
        with open(path, "w") as f:
            f.write(script)
        log(f"   step {label}")
        code, out = run_script(argv + [path], cwd, env, where)
        for line in out.splitlines():
            if line.startswith("::set-output ") or line.startswith("::save-state "):
                raise ReplayError(f"{where}: {line.split(' ')[0]} is disabled on GitHub: use $GITHUB_OUTPUT")
        outputs = self.after_files(files)
        return code == 0, outputs

    def run_uses(self, step, ctx, base_env, where, label, action_path):
        uses = step["uses"]
        with_values = self.eval_map(step.get("with"), ctx, f"{where}.with")
        if uses.startswith("./"):
            return self.run_composite(step, uses, with_values, ctx, base_env, where, label)
        name = uses.split("@")[0]
        if name == "actions/checkout":
            if set(with_values) - {"fetch-depth"}:
                raise ReplayError(f"{where}: actions/checkout inputs {sorted(with_values)} are not replayed")
            log(f"   step {label}: clone -> {self.workspace}")
            self.wp.checkout(self.workspace)
            return True, {}
        if name == "actions/cache":
            if set(with_values) - {"path", "key", "restore-keys"}:
                raise ReplayError(f"{where}: actions/cache inputs {sorted(with_values)} are not replayed")
            key, path = with_values.get("key"), with_values.get("path", "").strip()
            if not key or not path or "\n" in path:
                raise ReplayError(f"{where}: actions/cache needs a key and one path")
            path = os.path.normpath(os.path.join(self.workspace, os.path.expanduser(path)))
            hit = self.wp.cache_restore(key, path)
            log(f"   step {label}: actions/cache key {key!r}: {'restored' if hit else 'miss'} -> {path}")
            if not hit:
                def save(ok, key=key, path=path):
                    if ok and os.path.isdir(path):
                        log(f"   post-job actions/cache: {'saved' if self.wp.cache_save(key, path) else 'already saved'} {key!r}")
                self.post.append(save)
            return True, {"cache-hit": "true" if hit else "false"}
        if name == "actions/upload-artifact":
            known = {"name", "path", "include-hidden-files", "if-no-files-found", "retention-days"}
            if set(with_values) - known:
                raise ReplayError(f"{where}: actions/upload-artifact inputs {sorted(set(with_values) - known)} are not replayed")
            art = with_values.get("name", "artifact")
            if art in self.wf.artifacts:
                raise ReplayError(f"{where}: artifact {art} was already uploaded in this run (by {self.wf.artifacts[art]}): v4 refuses that")
            src = os.path.normpath(os.path.join(self.workspace, with_values.get("path", "")))
            hidden = any(part.startswith(".") for part in os.path.relpath(src, self.workspace).split(os.sep))
            if hidden and with_values.get("include-hidden-files", "false") != "true":
                raise ReplayError(f"{where}: {src} is in a hidden folder: upload-artifact@v4 leaves it out "
                                  f"without include-hidden-files: true")
            if not os.path.exists(src) or (os.path.isdir(src) and not os.listdir(src)):
                if with_values.get("if-no-files-found", "warn") == "error":
                    log(f"   step {label}: no files at {src}")
                    return False, {}
                raise ReplayError(f"{where}: nothing to upload at {src}")
            dest = self.wp.artifact_dir(self.wf.run_number, art)
            shutil.copytree(src, dest, symlinks=True)
            self.wf.artifacts[art] = self.job_id
            log(f"   step {label}: uploaded {src} as artifact {art}")
            return True, {}
        if name == "actions/download-artifact":
            if set(with_values) - {"name", "path"}:
                raise ReplayError(f"{where}: actions/download-artifact inputs {sorted(with_values)} are not replayed")
            art = with_values.get("name")
            if not art:
                raise ReplayError(f"{where}: download-artifact without a name downloads every artifact; name it")
            producer = self.wf.artifacts.get(art)
            if not producer:
                raise ReplayError(f"{where}: artifact {art} was not uploaded by any job that ran before")
            if producer not in self.wf.ancestors(self.job_id):
                raise ReplayError(f"{where}: artifact {art} comes from job {producer}, which job {self.job_id} "
                                  f"does not (transitively) need: nothing makes it exist in time")
            dest = os.path.normpath(os.path.join(self.workspace, with_values.get("path", ".")))
            shutil.copytree(self.wp.artifact_dir(self.wf.run_number, art), dest, symlinks=True, dirs_exist_ok=True)
            log(f"   step {label}: downloaded artifact {art} (from {producer}) -> {dest}")
            return True, {}
        raise ReplayError(f"{where}: action {uses} is not replayed")

    def run_composite(self, step, uses, with_values, ctx, base_env, where, label):
        action_dir = os.path.normpath(os.path.join(self.workspace, uses))
        meta_path = next((os.path.join(action_dir, n) for n in ("action.yml", "action.yaml")
                          if os.path.exists(os.path.join(action_dir, n))), None)
        if not meta_path:
            raise ReplayError(f"{where}: no action.yml in {uses} (was the repository checked out first?)")
        meta = load_yaml(meta_path)
        runs = meta.get("runs") or {}
        if runs.get("using") != "composite":
            raise ReplayError(f"{where}: {uses} is not a composite action")
        declared = meta.get("inputs") or {}
        unknown = set(with_values) - set(declared)
        if unknown:
            raise ReplayError(f"{where}: {uses} has no input(s) {sorted(unknown)}")
        caller_env = self.eval_map(step.get("env"), ctx, f"{where}.env")
        inputs = {}
        dctx = self.context({**base_env, **caller_env}, {}, f"{uses} input defaults", {}, action_dir)
        for name, spec in declared.items():
            spec = spec or {}
            if name in with_values:
                inputs[name] = with_values[name]
            elif spec.get("required") and "default" not in spec:
                raise ReplayError(f"{where}: {uses} requires input {name}")
            else:
                inputs[name] = self.eval_text(spec.get("default", ""), dctx, f"{uses} inputs.{name}.default")
        task = inputs.get("task")
        if task:
            wd = os.path.normpath(os.path.join(self.workspace, inputs.get("working-directory", ".")))
            reason = pending_manifest(wd, task)
            if reason:
                log(f"   step {label}: NOT REPLAYED: {reason}")
                self.wf.pending.append((self.job_id, label, reason))
                return True, {}
        log(f"   step {label}: composite action {uses}")
        inner = {}
        failed_before = self.failed
        for index, s in enumerate(runs.get("steps") or []):
            self.run_step(s, index, inner, inputs, action_dir, f"{uses} steps[{index}]", caller_env)
        ok = not (self.failed and not failed_before)
        final_env = {**self.env, **caller_env}

        def output(name, spec):
            def value():
                octx = self.context(final_env, inner, f"{uses} outputs.{name}", inputs, action_dir)
                got = self.eval_text((spec or {}).get("value", ""), octx, f"{uses} outputs.{name}.value")
                return got
            return Lazy(value)

        outputs = Strict({n: output(n, s) for n, s in (meta.get("outputs") or {}).items()},
                         f"outputs the action {uses} declares")
        return ok, outputs
