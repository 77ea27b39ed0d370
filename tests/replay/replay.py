#!/usr/bin/env python3
"""replay.py — run a CI pipeline of this repository locally, the way its runner would, and check
that its wiring holds: see README.md beside this file.

  tests/replay/replay.py azure-devops azure-pipelines/mlops.yml --run 0.5:promote --run 100:reject
  tests/replay/replay.py github github-workflows/mlops.yml --run 0.5:promote --run 100:reject
  tests/replay/replay.py azure-devops azure-pipelines/pr.yml --run checks --skip-job __default.Test

Each --run ALPHA:EXPECT is one run of the pipeline (in order, on the same "cloud"): ALPHA is the
pipeline's alpha parameter (input), EXPECT is promote or reject, and says which jobs must have
run and which must have been skipped (expectations.json). `--run checks` replays a pull request
pipeline: every job must succeed, and nothing may be sent or deployed. Exit 0 when every run did what it
must, 1 otherwise, with the reason.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import yaml  # noqa: F401  (Debian's python3-yaml)
except ImportError:
    sys.exit("replay: the yaml module is missing: apt-get install python3-yaml (scripts/deps.sh --tests)")

from common import TeamsStandin, Workplace, log  # noqa: E402
from expr import ReplayError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))

# What the replay gives the pipelines where a real project has settings: the values are made up
# and never leave this machine (the local backend talks to no cloud).
AZURE_IDS = {
    "AZURE_CLIENT_ID": "11111111-2222-4333-8444-555555555555",
    "AZURE_TENANT_ID": "66666666-7777-4888-9999-000000000000",
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-4000-8000-000000000001",
}


def check(condition, message, problems):
    if not condition:
        problems.append(message)


def registry_alias(wp, model, alias):
    path = os.path.join(wp.cloud, "registry", model, "aliases.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get(alias)


def run_checks(runner, wp, pipeline, number, teams, skip_jobs):
    """A pull request pipeline: every job it runs must succeed, and nothing may change."""
    from azure_devops import Replay, SUCCEEDED, SKIPPED
    from github_actions import WorkflowRun, SUCCESS, SKIPPED as GH_SKIPPED

    log(f"\n######## {runner} run {number}: pull request checks (not replayed: {', '.join(skip_jobs) or 'none'})")
    cards_before = len(teams.cards())
    production_before = registry_alias(wp, "diabetes", "production")
    problems = []
    if runner == "azure-devops":
        r = Replay(wp, os.path.join(wp.origin, pipeline), {"backend": "local"}, queue_variables={},
                   secret_variables={}, run_number=number, skip_jobs=skip_jobs)
        r.run()
        results, ok_value, skip_value = r.job_results, SUCCEEDED, SKIPPED
    else:
        r = WorkflowRun(wp, os.path.join(wp.origin, pipeline), {}, secrets={}, run_number=number,
                        event="pull_request", skip_jobs=skip_jobs)
        r.run()
        results, ok_value, skip_value = r.results, SUCCESS, GH_SKIPPED
    for job, result in results.items():
        if job in skip_jobs:
            continue
        check(result == ok_value, f"{job}: {result}", problems)
    for job in skip_jobs:
        check(job in results, f"--skip-job {job}: the pipeline has no such job", problems)
    check(len(teams.cards()) == cards_before, "a pull request check sent a Teams card", problems)
    check(registry_alias(wp, "diabetes", "production") == production_before,
          "a pull request check moved the production alias", problems)
    log(f"\n######## {runner} run {number} (pull request checks):")
    for job, result in results.items():
        log(f"   {job:28} {result}{' (--skip-job)' if job in skip_jobs else ''}")
    for key, label, reason in r.pending:
        log(f"   not replayed: {key} / {label}: {reason}")
    return problems


def run_once(runner, wp, pipeline, number, alpha, expect, teams, expectations):
    from azure_devops import Replay, SUCCEEDED, SKIPPED
    from github_actions import WorkflowRun, SUCCESS, SKIPPED as GH_SKIPPED

    log(f"\n######## {runner} run {number}: alpha={alpha}, expecting {expect}")
    cards_before = len(teams.cards())
    production_before = registry_alias(wp, "diabetes", "production")
    problems = []
    if runner == "azure-devops":
        r = Replay(wp, os.path.join(wp.origin, pipeline), {"backend": "local", "alpha": alpha},
                   queue_variables={"AZURE_SUBSCRIPTION_ID": AZURE_IDS["AZURE_SUBSCRIPTION_ID"]},
                   secret_variables={"TEAMS_WEBHOOK_URL": teams.url}, run_number=number)
        r.run()
        results, ok_value, skip_value = r.job_results, SUCCEEDED, SKIPPED
        promote = r.job_outputs.get("Evaluate.Evaluate", {}).get("mlstage.promote")
        deployed = r.job_outputs.get("DeployProd.DeployProd", {}).get("DeployProd.mlstage.version")
    else:
        r = WorkflowRun(wp, os.path.join(wp.origin, pipeline), {"backend": "local", "alpha": alpha},
                        secrets={**AZURE_IDS, "TEAMS_WEBHOOK_URL": teams.url}, run_number=number)
        r.run()
        results, ok_value, skip_value = r.results, SUCCESS, GH_SKIPPED
        promote = r.outputs.get("evaluate", {}).get("promote")
        deployed = None
    want = expectations[runner][expect]
    for job in want["ran"]:
        check(results.get(job) == ok_value, f"{job} should have run and succeeded: {results.get(job, 'never reached')}", problems)
    for job in want["skipped"]:
        check(results.get(job) == skip_value, f"{job} should have been skipped: {results.get(job, 'never reached')}", problems)
    for job, result in results.items():
        check(result in (ok_value, skip_value), f"{job}: {result}", problems)
    check(promote == ("true" if expect == "promote" else "false"),
          f"evaluate said promote={promote!r}, expected {'true' if expect == 'promote' else 'false'}", problems)
    # The approval link is the run's page on each CI (what the pipelines pass as approval_url).
    approval_prefix = ("https://dev.azure.com/replay/" if runner == "azure-devops"
                       else "https://github.com/replay/mlstage/actions/runs/")
    new_cards = teams.cards()[cards_before:]
    check(len(new_cards) == 1, f"expected one Teams card from this run, got {len(new_cards)}", problems)
    for card_file in new_cards:
        with open(card_file) as f:
            card = json.load(f)["attachments"][0]["content"]
        has_link = any(a.get("title") == "Review and approve" and a.get("url", "").startswith(approval_prefix)
                       for a in card.get("actions", []))
        check(has_link == (expect == "promote"),
              f"{os.path.basename(card_file)}: approval link {'missing' if expect == 'promote' else 'present'}", problems)
    production = registry_alias(wp, "diabetes", "production")
    if expect == "promote":
        check(production is not None and production != production_before,
              f"the production alias did not move (before {production_before}, after {production})", problems)
        if deployed is not None:
            check(str(production) == str(deployed), f"production alias {production} is not the version DeployProd deployed ({deployed})", problems)
    else:
        check(production == production_before, f"the production alias moved on a rejected candidate ({production_before} -> {production})", problems)
    log(f"\n######## {runner} run {number} (alpha={alpha}):")
    for job, result in results.items():
        log(f"   {job:28} {result}")
    for key, label, reason in r.pending:
        log(f"   not replayed: {key} / {label}: {reason}")
    log(f"   output references resolved: {len(r.outputs_read)}; promote={promote}; production alias: {production}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("runner", choices=["azure-devops", "github"])
    ap.add_argument("pipeline", help="the pipeline file, relative to the repository")
    ap.add_argument("--run", action="append", required=True, metavar="ALPHA:EXPECT",
                    help="ALPHA:promote or ALPHA:reject for an MLOps pipeline; `checks` for a pull request one")
    ap.add_argument("--skip-job", action="append", default=[], metavar="JOB",
                    help="a job not to replay (Stage.Job, or the job id): the PR pipelines' test job runs this test suite")
    ap.add_argument("--source", default=SOURCE, help="the repository to replay (default: this one)")
    ap.add_argument("--keep", action="store_true", help="keep the replay's folder")
    ap.add_argument("--cache", help="the pipeline cache's folder, kept across replays (default: a new one)")
    args = ap.parse_args()
    with open(os.path.join(HERE, "expectations.json")) as f:
        expectations = json.load(f)
    root = tempfile.mkdtemp(prefix=f"replay-{args.runner}-")
    wp = Workplace(root, args.source, cache=args.cache)
    teams = None
    problems = []
    start = time.monotonic()
    try:
        wp.make_origin()
        if not os.path.exists(os.path.join(wp.origin, args.pipeline)):
            raise ReplayError(f"{args.pipeline} is not in {args.source}")
        teams = TeamsStandin(args.source, os.path.join(root, "teams"))
        for number, spec in enumerate(args.run, 1):
            if spec == "checks":
                got = run_checks(args.runner, wp, args.pipeline, number, teams, args.skip_job)
                problems.extend(f"run {number} (checks): {p}" for p in got)
                continue
            alpha, _, expect = spec.partition(":")
            if expect not in ("promote", "reject"):
                ap.error(f"--run {spec}: expected ALPHA:promote or ALPHA:reject")
            got = run_once(args.runner, wp, args.pipeline, number, alpha, expect, teams, expectations)
            problems.extend(f"run {number} (alpha={alpha}): {p}" for p in got)
    except ReplayError as e:
        problems.append(str(e))
    finally:
        if teams:
            teams.stop()
        if args.keep:
            log(f"replay folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log("")
    if problems:
        for p in problems:
            log(f"REPLAY FAILED: {p}")
    else:
        log(f"replay of {args.pipeline} ({args.runner}): {len(args.run)} run(s) as expected "
            f"in {time.monotonic() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
