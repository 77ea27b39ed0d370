#!/usr/bin/env python3
"""selftest.py — the replay must be able to fail, and must read what the runners read.

  tests/replay/selftest.py --mlstage build/bin/mlstage --test-plugins build/tests/plugins

1. The parsers: ##vso lines and $GITHUB_OUTPUT files, written by hand and written by mlstage
   itself (the test plugin's special and multi-line outputs, under TF_BUILD=True and
   GITHUB_ACTIONS=true), must give back the exact values; so must the composite action's own
   reading of $GITHUB_OUTPUT into its outputs-json.
2. The expression evaluators on the cases the pipelines rely on.
3. Broken copies of the pipelines — an output name mlstage never writes, a missing condition, a
   missing artifact download, a secret not mapped into its step, a missing id-token permission —
   must make the replay fail, with a message that names the problem.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import yaml  # noqa: F401  (Debian's python3-yaml)
except ImportError:
    sys.exit("replay self-test: the yaml module is missing: apt-get install python3-yaml (scripts/deps.sh --tests)")

from azure_devops import parse_vso  # noqa: E402
from common import copy_tree  # noqa: E402
from expr import Context, ReplayError, Strict, evaluate, interpolate, parse  # noqa: E402
from github_actions import parse_file_commands  # noqa: E402

SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
results = []


def record(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def expect_equal(name, got, want):
    record(name, got == want, "" if got == want else f"got {got!r}, want {want!r}")


def expect_error(name, fn, pattern):
    try:
        fn()
    except ReplayError as e:
        record(name, re.search(pattern, str(e)) is not None, str(e)[:200])
        return
    record(name, False, "no error")


def parsers():
    cmd = parse_vso("##vso[task.setvariable variable=a%3Bb;isOutput=true]x%0Ay%AZP25;%AZP253B]z")
    expect_equal("vso: properties and data unescaped as the agent does", cmd,
                 ("task.setvariable", {"variable": "a;b", "isoutput": "true"}, "x\ny%;%3B]z"))
    expect_equal("vso: the marker anywhere in the line", parse_vso("log: ##vso[task.setvariable variable=k]v")[2], "v")
    expect_equal("vso: property names ignore case", parse_vso("##vso[task.setvariable Variable=k;ISOUTPUT=true]v")[1],
                 {"variable": "k", "isoutput": "true"})
    expect_equal("vso: area.event is required", parse_vso("##vso[task]x"), None)
    expect_equal("vso: a property without a value is skipped", parse_vso("##vso[task.setvariable variable=;x=1]v")[1], {"x": "1"})
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "out")
        with open(p, "w", newline="") as f:
            f.write("a=1\n\nb<<EOF\nline1\r\nline2\nEOF\nc=x=y\nd<<=\n=x\n\n=\ne=\n")
        expect_equal("GITHUB_OUTPUT: NAME=VALUE and heredoc, as the runner reads them", parse_file_commands(p),
                     {"a": "1", "b": "line1\r\nline2", "c": "x=y", "d": "=x\n", "e": ""})
        with open(p, "w") as f:
            f.write("a<<EOF\nno end\n")
        expect_error("GITHUB_OUTPUT: a heredoc without its delimiter", lambda: parse_file_commands(p), "no closing")


def round_trip(mlstage, plugins):
    """mlstage's own escaping, read back by the replay's runner parsers."""
    want = {"special": "50% done; [a] b]c:d,e", "multiline": "line one\nline two\r\nline three"}
    with tempfile.TemporaryDirectory() as d:
        manifest = os.path.join(d, "special.yml")
        with open(manifest, "w") as f:
            f.write("task: special\nplugin: test-plugin\ninputs:\n  mode: outputs\n")
        base = {"PATH": "/usr/bin:/bin", "HOME": d, "NO_COLOR": "1"}
        argv = [mlstage, "run", manifest, "--plugin-path", plugins, "--workspace", d]
        r = subprocess.run(argv, cwd=d, env={**base, "TF_BUILD": "True"}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        got = {}
        for line in r.stdout.splitlines():
            cmd = parse_vso(line)
            if cmd and cmd[0] == "task.setvariable" and cmd[1].get("isoutput") == "true":
                got[cmd[1]["variable"]] = cmd[2]
        expect_equal("mlstage -> agent: special and multi-line outputs survive ##vso escaping",
                     {k: got.get(k) for k in want}, want)
        out = os.path.join(d, "github_output")
        open(out, "w").close()
        r = subprocess.run(argv, cwd=d, env={**base, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": out},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got = parse_file_commands(out)
        expect_equal("mlstage -> runner: special and multi-line outputs survive $GITHUB_OUTPUT",
                     {k: got.get(k) for k in want}, want)
        with open(out) as f:
            record("mlstage writes the multi-line output in the heredoc form", "multiline<<ghadelimiter_" in f.read())
        # The composite action's outputs-json: its own reading of the file must agree with the runner's.
        import json
        import yaml
        with open(os.path.join(SOURCE, "github-workflows", "action", "action.yml")) as f:
            run = yaml.safe_load(f)["runs"]["steps"][-1]["run"]
        script = run[run.index("<<'PY'\n") + len("<<'PY'\n"):run.rindex("\nPY")]
        subprocess.run([sys.executable, "-c", script, out], check=True)
        got = parse_file_commands(out)
        everything = json.loads(got.get("outputs-json", "{}"))
        expect_equal("the action's outputs-json holds every output, as the runner reads them",
                     everything, {k: v for k, v in got.items() if k != "outputs-json"})


def expressions():
    outputs = Strict({"mlstage.promote": "true"}, "outputs of job Evaluate")
    ctx = Context("azure", {"dependencies": Strict({"Evaluate": Strict({"outputs": outputs, "result": "Succeeded"},
                                                                        "job")}, "jobs"),
                            "variables": Strict({"Build.SourceBranch": "refs/heads/main"}, "variables")},
                  status={"succeeded": lambda: False})
    ev = lambda text: evaluate(parse(text, "azure"), ctx)  # noqa: E731
    expect_equal("azure: eq ignores case", ev("eq(dependencies.Evaluate.outputs['mlstage.promote'], 'TRUE')"), True)
    expect_equal("azure: and() stops at the first false (a missing output is not read)",
                 ev("and(succeeded(), eq(dependencies.Evaluate.outputs['mlstage.nothing'], 'true'))"), False)
    expect_error("azure: a missing output is an error", lambda: ev("eq(dependencies.Evaluate.outputs['mlstage.promoted'], 'true')"),
                 "promoted")
    expect_error("azure: GitHub operators are refused", lambda: ev("variables.a == 'b'"), "GitHub syntax")
    expect_equal("azure: split()[0] and format()", ev("format('{0}-{1}', split('model_dir=/x=y', '=')[0], 1)"), "model_dir-1")
    gctx = Context("github", {"needs": Strict({"evaluate": Strict({"outputs": Strict({"promote": "false"}, "o")}, "j")}, "n"),
                              "inputs": Strict({"backend": ""}, "inputs")}, status={"success": lambda: True})
    gev = lambda text: evaluate(parse(text, "github"), gctx)  # noqa: E731
    expect_equal("github: || gives the first truthy operand", gev("inputs.backend || 'azureml'"), "azureml")
    expect_equal("github: != compares strings without case", gev("needs.evaluate.outputs.promote != 'FALSE'"), False)
    expect_equal("github: success() && ...", gev("success() && (needs.evaluate.outputs.promote == 'true')"), False)
    expect_error("github: an undeclared job output is an error", lambda: gev("needs.evaluate.outputs.promoted"), "promoted")
    expect_equal("github: ${{ }} in text", interpolate("v=${{ needs.evaluate.outputs.promote }}!", gctx), "v=false!")


MUTATIONS = [
    # (name, runner, pipeline, file, old, new, runs, error pattern)
    ("azure: a cross-stage output mlstage never writes (metric_file)", "azure-devops", "azure-pipelines/mlops.yml",
     "azure-pipelines/mlops.yml", "outputs['mlstage.metrics_file'] ]\n    steps:",
     "outputs['mlstage.metric_file'] ]\n    steps:", ["0.5:promote"], r"metric_file.*not among the outputs"),
    ("azure: a same-job output mlstage never writes (smoke_pass)", "azure-devops", "azure-pipelines/mlops.yml",
     "azure-pipelines/mlops.yml", "SMOKE: $(mlstage.smoke_passed)", "SMOKE: $(mlstage.smoke_pass)", ["0.5:promote"],
     r"mlstage\.smoke_pass.*wrote no output smoke_pass"),
    ("azure: a stage condition on an output of the wrong step", "azure-devops", "azure-pipelines/mlops.yml",
     "azure-pipelines/mlops.yml", "'DeployDev.DeployDev.mlstage.smoke_passed'", "'DeployDev.mlstage.smoke_passed'",
     ["0.5:promote"], r"DeployDev\.mlstage\.smoke_passed.*not among the outputs"),
    ("azure: Register without its promote condition runs for a rejected candidate", "azure-devops",
     "azure-pipelines/mlops.yml", "azure-pipelines/mlops.yml",
     "  - Evaluate\n  condition: and(succeeded(), eq(dependencies.Evaluate.outputs['Evaluate.mlstage.promote'], 'true'))\n  jobs:\n  - job: Register",
     "  - Evaluate\n  jobs:\n  - job: Register", ["0.5:promote", "100:reject"], r"Register\.Register should have been skipped"),
    ("azure: the Teams card without its secret mapped into the step", "azure-devops", "azure-pipelines/mlops.yml",
     "azure-pipelines/mlops.yml",
     "        - approval_url=$(System.CollectionUri)$(System.TeamProjectId)/_build/results?buildId=$(Build.BuildId)\n        env:\n          TEAMS_WEBHOOK_URL: $(TEAMS_WEBHOOK_URL)\n",
     "        - approval_url=$(System.CollectionUri)$(System.TeamProjectId)/_build/results?buildId=$(Build.BuildId)\n",
     ["0.5:promote"], r"Notify\.AskApproval should have run and succeeded: Failed"),
    ("github: a job output mlstage never writes (metric_file)", "github", "github-workflows/mlops.yml",
     "github-workflows/mlops.yml", "metrics=${{ needs.train.outputs.metrics_file }}\n            model_name=${{ env.MODEL_NAME }}\n            subscription_id=${{ env.AZURE_SUBSCRIPTION_ID }}\n            resource_group=${{ env.RESOURCE_GROUP }}\n            workspace=${{ env.AML_WORKSPACE }}\n\n  register:",
     "metrics=${{ needs.train.outputs.metric_file }}\n            model_name=${{ env.MODEL_NAME }}\n            subscription_id=${{ env.AZURE_SUBSCRIPTION_ID }}\n            resource_group=${{ env.RESOURCE_GROUP }}\n            workspace=${{ env.AML_WORKSPACE }}\n\n  register:",
     ["0.5:promote"], r"metric_file.*not among the outputs job train declares"),
    ("github: an action output whose step never wrote it (promoted)", "github", "github-workflows/mlops.yml",
     "github-workflows/action/action.yml", "value: ${{ steps.run.outputs.promote }}",
     "value: ${{ steps.run.outputs.promoted }}", ["0.5:promote"], r"promoted.*not among the outputs step run wrote"),
    ("github: evaluate without the training run's artifact", "github", "github-workflows/mlops.yml",
     "github-workflows/mlops.yml",
     "      - name: Download the training run\n        uses: actions/download-artifact@v4\n        with:\n          name: train-run\n          path: .mlstage/runs/${{ needs.train.outputs.run_id }}\n      - name: Evaluate",
     "      - name: Evaluate", ["0.5:promote"], r"evaluate should have run and succeeded: failure"),
    ("github: train reaching Azure without id-token: write", "github", "github-workflows/mlops.yml",
     "github-workflows/mlops.yml", "  train:\n    name: Train\n    needs: infra\n    runs-on: ubuntu-22.04\n    permissions:\n      contents: read\n      id-token: write\n",
     "  train:\n    name: Train\n    needs: infra\n    runs-on: ubuntu-22.04\n    permissions:\n      contents: read\n",
     ["0.5:promote"], r"lacks `permissions: id-token: write`"),
]


def mutations(cache, only=None):
    for name, runner, pipeline, file, old, new, runs, pattern in MUTATIONS:
        if only and not re.search(only, name):
            continue
        tmp = tempfile.mkdtemp(prefix="replay-selftest-")
        try:
            tree = os.path.join(tmp, "tree")
            copy_tree(SOURCE, tree)
            subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
            path = os.path.join(tree, file)
            with open(path) as f:
                text = f.read()
            if text.count(old) != 1:
                record(name, False, f"the mutation matches {text.count(old)} times in {file}")
                continue
            with open(path, "w") as f:
                f.write(text.replace(old, new))
            argv = [sys.executable, os.path.join(HERE, "replay.py"), runner, pipeline, "--source", tree,
                    "--cache", cache]
            for r in runs:
                argv += ["--run", r]
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            failures = [line for line in proc.stdout.splitlines() if line.startswith("REPLAY FAILED")]
            hit = [line for line in failures if re.search(pattern, line)]
            if proc.returncode != 0 and hit:
                record(name, True, hit[0][len("REPLAY FAILED: "):][:220])
            else:
                record(name, False, f"exit {proc.returncode}; failures: {failures or 'none'}\n" + proc.stdout[-3000:])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlstage", required=True, help="the built mlstage binary")
    ap.add_argument("--test-plugins", required=True, help="the folder with the test plugin (test-plugin.so)")
    ap.add_argument("--only", help="run the mutations whose name matches this regular expression")
    args = ap.parse_args()
    parsers()
    round_trip(os.path.abspath(args.mlstage), os.path.abspath(args.test_plugins))
    expressions()
    cache = tempfile.mkdtemp(prefix="replay-selftest-cache-")
    try:
        mutations(cache, args.only)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
