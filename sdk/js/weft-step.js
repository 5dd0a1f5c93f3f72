// Write weft pipeline steps in JavaScript.
//
//   import * as weft from "./weft-step.js";
//
//   export const run = weft.step((params) => {
//     const rows = weft.readCsv("test");            // /inputs/test
//     weft.writeOutput("report", `${rows.length} rows\n`);
//     weft.logMetric("rows", rows.length);
//   });
//
// `weft build` turns the folder holding app.js into a WebAssembly component
// with componentize-js (this file is supplied by weft at build time).
//
// The sandbox: inputs are read-only under /inputs/<name>, outputs are
// written under /outputs/<name> (every declared output must exist when the
// step returns), console.log goes to the step's logs. No environment, no
// network, no other path.
//
// Params arrive as an object. A thrown weft.InvalidParams fails the step as
// invalid-params; any other exception fails it with its message.

import { logMetric as witLogMetric, logParam as witLogParam, setTag as witSetTag, logMetadata as witLogMetadata } from "weft:step/tracker@0.1.0";
import { getDirectories } from "wasi:filesystem/preopens@0.2.12";

/** The params (or inputs) are not what the step accepts. */
export class InvalidParams extends Error {}

function checkName(name) {
  if (typeof name !== "string" || name === "" || name.includes("/") || name === "." || name === "..") {
    throw new Error(`'${name}' is not an input or output name`);
  }
  return name;
}

function preopen(path) {
  const found = getDirectories().find(([, name]) => name === path);
  if (!found) throw new Error(`the sandbox has no ${path}`);
  return found[0];
}

/** The bytes of input `name` (a file). */
export function readInputBytes(name) {
  const file = preopen("/inputs").openAt({}, checkName(name), {}, { read: true });
  const size = file.stat().size;
  const chunks = [];
  let offset = 0n;
  while (offset < size) {
    const [bytes, eof] = file.read(1n << 20n, offset);
    if (bytes.length === 0) break;
    chunks.push(bytes);
    offset += BigInt(bytes.length);
    if (eof) break;
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function readInputText(name) {
  return new TextDecoder().decode(readInputBytes(name));
}

export function readJson(name) {
  return JSON.parse(readInputText(name));
}

/** Rows of a CSV input (no quoted commas) as objects keyed by the header;
 * cells that are numbers become numbers. */
export function readCsv(name) {
  const lines = readInputText(name).split(/\r?\n/).filter((l) => l.length > 0);
  if (lines.length === 0) return [];
  const header = lines[0].split(",");
  return lines.slice(1).map((line) => {
    const cells = line.split(",");
    const row = {};
    header.forEach((h, i) => {
      const v = cells[i];
      row[h] = v !== undefined && v.trim() !== "" && !Number.isNaN(Number(v)) ? Number(v) : v;
    });
    return row;
  });
}

/** Writes output `name` from a string or bytes. */
export function writeOutput(name, data) {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = preopen("/outputs").openAt({}, checkName(name), { create: true, truncate: true }, { write: true });
  let offset = 0;
  while (offset < bytes.length) {
    const written = Number(file.write(bytes.subarray(offset), BigInt(offset)));
    if (written === 0) throw new Error(`could not write output ${name}`);
    offset += written;
  }
}

/** Writes objects as CSV output `name`: a header line (`fields`, else the
 * first row's keys), then one line per row; a cell holding a comma, a quote
 * or a line break is quoted. weft's table (see the README) is this with
 * numbers in every cell. */
export function writeCsv(name, rows, fields) {
  const header = fields ?? (rows.length > 0 ? Object.keys(rows[0]) : []);
  const cell = (v) => {
    const text = v === undefined || v === null ? "" : String(v);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [header.map(cell).join(",")];
  for (const row of rows) lines.push(header.map((h) => cell(row[h])).join(","));
  writeOutput(name, lines.join("\n") + "\n");
}

export function writeJson(name, value) {
  writeOutput(name, JSON.stringify(value, null, 2) + "\n");
}

/** Logs a metric value; `step` orders a history (an epoch). */
export function logMetric(key, value, step) {
  witLogMetric(key, Number(value), step === undefined || step === null ? undefined : BigInt(step));
}

export function logParam(key, value) {
  witLogParam(key, String(value));
}

export function setTag(key, value) {
  witSetTag(key, String(value));
}

/** Attaches a JSON document (any JSON-serialisable value). */
export function logMetadata(key, value) {
  witLogMetadata(key, JSON.stringify(value));
}

/** Makes `fn(params)` the step: export its result as `run`. */
export function step(fn) {
  return function run(params) {
    let value;
    try {
      value = JSON.parse(params);
    } catch (e) {
      throw { tag: "invalid-params", val: `params are not JSON: ${e.message}` };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw { tag: "invalid-params", val: "params must be a JSON object" };
    }
    try {
      fn(value);
    } catch (e) {
      if (e instanceof InvalidParams) throw { tag: "invalid-params", val: e.message };
      const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      if (e instanceof Error && e.stack) console.error(e.stack);
      throw { tag: "failed", val: message };
    }
  };
}
