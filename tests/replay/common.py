"""common.py — what both runners' replays share: the replay's workplace (a git copy of the
repository, the "cloud" the local backend stands in for, the pipeline cache, artifacts), fresh
agent folders per job, running a step's script, and the Teams webhook stand-in."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

from expr import ReplayError

# Manifests that other branches add: a step that runs one of them, in a tree that does not have
# it yet, is reported and not run (nothing references such a step's outputs). Once the file is
# in the tree, the step runs like any other.
PENDING_MANIFESTS = {
    "tasks/infra.yml": "the infra-bicep plugin and tasks/infra.yml come with the infra branch",
}

STEP_TIMEOUT_S = 600


def log(msg=""):
    print(msg, flush=True)


def run_git(args, cwd, env=None):
    e = dict(os.environ)
    e.update({
        "GIT_AUTHOR_NAME": "mlstage replay", "GIT_AUTHOR_EMAIL": "replay@mlstage.local",
        "GIT_COMMITTER_NAME": "mlstage replay", "GIT_COMMITTER_EMAIL": "replay@mlstage.local",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": cwd,
    })
    if env:
        e.update(env)
    r = subprocess.run(["git", *args], cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise ReplayError(f"git {' '.join(args)} in {cwd}: {r.stdout.strip()}")
    return r.stdout


class Workplace:
    """The replay's folder: origin (the repository as a pipeline sees it), the cloud stand-in,
    the pipeline cache and artifact stores, and one agent whose folders are made anew per job."""

    def __init__(self, root, source, cache=None, branch="main"):
        self.root = root
        self.source = os.path.abspath(source)
        self.branch = branch
        self.origin = os.path.join(root, "origin")
        self.cloud = os.path.join(root, "cloud")
        self.cache = os.path.abspath(cache) if cache else os.path.join(root, "cache")
        self.artifacts = os.path.join(root, "artifacts")
        self.agent = os.path.join(root, "agent")
        for d in (self.cloud, self.cache, self.artifacts, self.agent):
            os.makedirs(d, exist_ok=True)
        os.makedirs(os.path.join(self.cloud, "registry"), exist_ok=True)
        os.makedirs(os.path.join(self.cloud, "endpoints"), exist_ok=True)
        self.commit = None

    def make_origin(self):
        """A git repository holding the source tree's files as they are now (tracked and new,
        not ignored), committed on `branch`: what the CI's checkout would fetch."""
        copy_tree(self.source, self.origin)
        run_git(["init", "-q", "-b", self.branch], self.origin)
        run_git(["add", "-A"], self.origin)
        run_git(["commit", "-q", "-m", "replay"], self.origin)
        self.commit = run_git(["rev-parse", "HEAD"], self.origin).strip()

    def fresh_agent(self):
        """An empty agent folder, as a hosted agent gives each job."""
        if os.path.exists(self.agent):
            shutil.rmtree(self.agent)
        os.makedirs(self.agent)
        return self.agent

    def checkout(self, dest):
        """A clone of origin at `dest`, and the cloud stand-in linked in: the local backend's
        registry and endpoints are what the Azure ML workspace is to the azureml backend —
        shared by every job — while runs and everything else stay on the agent."""
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        run_git(["clone", "-q", "--no-hardlinks", self.origin, dest], self.root)
        run_git(["checkout", "-q", "--detach", self.commit], dest)
        state = os.path.join(dest, ".mlstage")
        os.makedirs(state, exist_ok=True)
        for name in ("registry", "endpoints"):
            os.symlink(os.path.join(self.cloud, name), os.path.join(state, name))

    # The pipeline cache: a hit copies the saved folder back.
    def cache_dir(self, key):
        return os.path.join(self.cache, hashlib.sha256(key.encode()).hexdigest()[:32])

    def cache_restore(self, key, path):
        d = self.cache_dir(key)
        if not os.path.isdir(d):
            return False
        if os.path.exists(path):
            shutil.rmtree(path)
        shutil.copytree(d, path, symlinks=True)
        return True

    def cache_save(self, key, path):
        d = self.cache_dir(key)
        if os.path.exists(d):
            return False
        if not os.path.isdir(path):
            raise ReplayError(f"cache save: {path} does not exist")
        shutil.copytree(path, d, symlinks=True)
        return True

    def artifact_dir(self, run, name):
        return os.path.join(self.artifacts, str(run), name)


def copy_tree(source, dest):
    """The files git would commit from `source` (tracked and new, not ignored) into `dest`."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source, stdout=subprocess.PIPE, check=True).stdout
    os.makedirs(dest)
    for rel in filter(None, listing.decode().split("\0")):
        src = os.path.join(source, rel)
        if not os.path.lexists(src):
            continue  # deleted in the work tree
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isfile(src):
            shutil.copy2(src, dst)


def clean_env(extra):
    """The environment of a step: a plain one, not the test runner's."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "NO_COLOR": "1",
    }
    for k in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "TZ"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


def run_script(argv, cwd, env, label):
    """Runs a step's process in its own process group; returns (exit code, stdout text).
    Output is echoed with the step's label."""
    if not os.path.isdir(cwd):
        raise ReplayError(f"{label}: working directory {cwd} does not exist")
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ReplayError(f"{label}: still running after {STEP_TIMEOUT_S} s") from None
    text = out.decode("utf-8", errors="replace")
    for line in text.splitlines():
        print(f"      | {line}")
    print(f"      ({time.monotonic() - start:.1f} s, exit {proc.returncode})", flush=True)
    return proc.returncode, text


class TeamsStandin:
    """scripts/teams-webhook-standin.py on a loopback port: the Teams webhook of the replay."""

    def __init__(self, source, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        url_file = os.path.join(folder, "url")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(source, "scripts", "teams-webhook-standin.py"),
             "--out", os.path.join(folder, "cards"), "--url-file", url_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not (os.path.exists(url_file) and os.path.getsize(url_file)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ReplayError("the Teams webhook stand-in did not start")
            time.sleep(0.05)
        with open(url_file) as f:
            self.url = f.read().strip()

    def cards(self):
        d = os.path.join(self.folder, "cards")
        return sorted(os.path.join(d, n) for n in os.listdir(d)) if os.path.isdir(d) else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def fake_jwt(subject):
    """An unsigned token shaped like the one the runner hands out (never sent anywhere)."""
    import base64
    import json

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': subject, 'aud': 'api://AzureADTokenExchange'})}."


def pending_manifest(checkout, task):
    """The reason a step's manifest is not replayed, or None."""
    if task in PENDING_MANIFESTS and not os.path.exists(os.path.join(checkout, task)):
        return f"{task} is not in this tree ({PENDING_MANIFESTS[task]})"
    return None


def load_yaml(path):
    """YAML as the runners read it: YAML 1.2 booleans only (`on:` stays the key "on")."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    import re as _re
    bool_rx = _re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
    for ch in "tTfF":
        Loader.yaml_implicit_resolvers.setdefault(ch, []).insert(0, ("tag:yaml.org,2002:bool", bool_rx))
    Loader.add_constructor("tag:yaml.org,2002:bool", lambda loader, node: loader.construct_scalar(node).lower() == "true")
    with open(path) as f:
        return yaml.load(f, Loader=Loader)
