#!/usr/bin/env node
// validate-card.js — checks Adaptive Cards with the official JSON Schema (ajv) and Microsoft's parser.
//
// usage: node tests/node/validate-card.js [--schema FILE] CARD.json...
//
// Each file is an Adaptive Card, or a Teams webhook message holding one
// ({"type": "message", "attachments": [{"contentType":
// "application/vnd.microsoft.card.adaptive", "content": <card>}]}), whose
// envelope and 28 KB limit are checked too. A card passes when:
//   1. it validates against adaptive-card-1.5.0.schema.json (draft-06) with ajv;
//   2. Microsoft's `adaptivecards` package parses it, targeting the card's own
//      version, without unknown element or action types, invalid values or
//      properties newer than that version, and its validateProperties() finds
//      nothing.
// The Teams-only "msteams" member of the card (mentions, width), which the
// generic schema does not declare, is checked here by its documented shape
// and then set aside for step 1.
// Exit status: 0 when every card passes, 1 when one fails, 2 on usage or setup errors.
"use strict";

const fs = require("fs");
const path = require("path");

const SETUP_HINT = "run `npm ci --prefix tests/node` (from the repository root) first";
const WEBHOOK_LIMIT = 28 * 1024;
const CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive";
const SCHEMA_ERRORS_SHOWN = 12;

function load(name) {
  try {
    return require(name);
  } catch (e) {
    console.error(`validate-card: cannot load ${name} (${e.code || e.message}): ${SETUP_HINT}`);
    process.exit(2);
  }
}

const Ajv = load("ajv");
const addFormats = load("ajv-formats");
const draft06 = load("ajv/dist/refs/json-schema-draft-06.json");
// The ESM build under lib/ does not load in node without a bundler.
const AC = load("adaptivecards/dist/adaptivecards.js");

function parseArgs(argv) {
  let schemaPath = path.join(__dirname, "..", "data", "adaptive-card-1.5.0.schema.json");
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--schema" && i + 1 < argv.length) schemaPath = argv[++i];
    else if (argv[i].startsWith("-")) usage(`unknown option ${argv[i]}`);
    else files.push(argv[i]);
  }
  if (files.length === 0) usage("no card given");
  return { schemaPath, files };
}

function usage(why) {
  console.error(`validate-card: ${why}\nusage: node validate-card.js [--schema FILE] CARD.json...`);
  process.exit(2);
}

function schemaValidator(schemaPath) {
  const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
  if (schema.$schema !== "http://json-schema.org/draft-06/schema#") {
    console.error(`validate-card: ${schemaPath} declares ${schema.$schema}, expected draft-06`);
    process.exit(2);
  }
  // The file names itself with draft-04's "id", which draft-06 spells "$id" and ajv 8
  // refuses; the meaning is the same.
  if (typeof schema.id === "string" && schema.$id === undefined) {
    schema.$id = schema.id;
    delete schema.id;
  }
  // ajv 8 speaks draft-07 and later; draft-06 needs its meta-schema. strict: false
  // because the schema carries annotations ajv does not know ("version", "features").
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addMetaSchema(draft06);
  addFormats(ajv);
  return ajv.compile(schema);
}

// The envelope a Teams Workflows webhook takes; returns the card inside.
function unwrap(doc, raw, problems) {
  if (doc.type !== "message") return doc;
  if (Buffer.byteLength(raw, "utf8") > WEBHOOK_LIMIT)
    problems.push(`message is ${Buffer.byteLength(raw, "utf8")} bytes, over the 28 KB limit`);
  const att = Array.isArray(doc.attachments) ? doc.attachments : [];
  if (att.length !== 1) problems.push(`message has ${att.length} attachments, expected 1`);
  if (!att[0] || att[0].contentType !== CARD_CONTENT_TYPE)
    problems.push(`attachments[0].contentType is not ${CARD_CONTENT_TYPE}`);
  if (!att[0] || typeof att[0].content !== "object" || att[0].content === null) {
    problems.push("attachments[0].content is not a card");
    return null;
  }
  return att[0].content;
}

// Collects the text of every TextBlock (and TextRun), for the mention check.
function texts(node, out) {
  if (Array.isArray(node)) node.forEach((n) => texts(n, out));
  else if (node && typeof node === "object") {
    if ((node.type === "TextBlock" || node.type === "TextRun") && typeof node.text === "string")
      out.push(node.text);
    Object.values(node).forEach((v) => texts(v, out));
  }
  return out;
}

// Teams' own extension of the card: {"width": "Full", "entities": [mention...]}.
function checkMsteams(card, problems) {
  const ms = card.msteams;
  if (ms === undefined) return;
  if (typeof ms !== "object" || ms === null || Array.isArray(ms)) {
    problems.push("msteams: expected an object");
    return;
  }
  for (const key of Object.keys(ms))
    if (key !== "width" && key !== "entities") problems.push(`msteams.${key}: not a Teams property`);
  if (ms.width !== undefined && ms.width !== "Full") problems.push('msteams.width: expected "Full"');
  const bodyText = texts(card.body || [], []).join("\n");
  (ms.entities || []).forEach((e, i) => {
    const where = `msteams.entities[${i}]`;
    if (e.type !== "mention") problems.push(`${where}.type: expected "mention"`);
    if (typeof e.text !== "string" || !/^<at>[^<>]+<\/at>$/.test(e.text))
      problems.push(`${where}.text: expected "<at>name</at>"`);
    else if (!bodyText.includes(e.text)) problems.push(`${where}.text ${e.text} is in no TextBlock`);
    const m = e.mentioned || {};
    if (typeof m.id !== "string" || !m.id) problems.push(`${where}.mentioned.id: expected a string`);
    if (typeof m.name !== "string" || !m.name)
      problems.push(`${where}.mentioned.name: expected a string`);
  });
}

function checkWithParser(card, problems) {
  const version = AC.Version.parse(card.version, new AC.SerializationContext());
  if (!version || !version.isValid) {
    problems.push(`adaptivecards: version ${JSON.stringify(card.version)} is not a card version`);
    return;
  }
  const target = Object.values(AC.Versions).find(
    (v) => v && v.major === version.major && v.minor === version.minor,
  );
  if (!target) {
    problems.push(`adaptivecards: version ${card.version} is not one this package knows`);
    return;
  }
  const context = new AC.SerializationContext(target);
  const parsed = new AC.AdaptiveCard();
  parsed.parse(card, context);
  for (let i = 0; i < context.eventCount; i++) {
    const e = context.getEventAt(i);
    problems.push(`adaptivecards parse: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }
  for (const e of parsed.validateProperties().validationEvents)
    problems.push(`adaptivecards validate: ${AC.ValidationEvent[e.event]}: ${e.message}`);
}

function checkFile(file, validate) {
  const problems = [];
  let raw;
  let doc;
  try {
    raw = fs.readFileSync(file, "utf8");
    doc = JSON.parse(raw);
  } catch (e) {
    return [`cannot read JSON: ${e.message}`];
  }
  const card = unwrap(doc, raw, problems);
  if (!card) return problems;
  if (card.type !== "AdaptiveCard") problems.push(`type is ${JSON.stringify(card.type)}, not AdaptiveCard`);
  checkMsteams(card, problems);
  const generic = { ...card };
  delete generic.msteams;
  if (!validate(generic)) {
    // anyOf over every element type reports each branch: the first lines tell enough.
    const errors = validate.errors;
    for (const e of errors.slice(0, SCHEMA_ERRORS_SHOWN))
      problems.push(`schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
    if (errors.length > SCHEMA_ERRORS_SHOWN)
      problems.push(`schema: ... and ${errors.length - SCHEMA_ERRORS_SHOWN} more`);
  }
  checkWithParser(generic, problems);
  return problems;
}

function main() {
  const { schemaPath, files } = parseArgs(process.argv.slice(2));
  const validate = schemaValidator(schemaPath);
  let failed = 0;
  for (const file of files) {
    const problems = checkFile(file, validate);
    if (problems.length === 0) {
      console.log(`ok: ${file}`);
    } else {
      failed++;
      console.log(`FAIL: ${file}`);
      for (const p of problems) console.log(`  ${p}`);
    }
  }
  console.log(`${files.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
