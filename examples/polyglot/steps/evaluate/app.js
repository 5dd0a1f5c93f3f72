// evaluate (JavaScript): held-out accuracy and per-class precision, recall
// and F1 of the softmax model the Rust `train` step wrote, as metrics and as
// a Markdown report.

import * as weft from "./weft-step.js";

function predict(model, row) {
  const x = row.map((v, j) => (v - model.mean[j]) / model.std[j]);
  const logits = model.weights.map((w, c) => w.reduce((s, wj, j) => s + wj * x[j], model.bias[c]));
  return logits.indexOf(Math.max(...logits));
}

export const run = weft.step((params) => {
  const model = weft.readJson("model");
  const test = weft.readJson("test");
  if (JSON.stringify(test.features) !== JSON.stringify(model.features)) {
    throw new Error("the test set's features differ from the model's");
  }
  if (test.rows.length === 0) throw new Error("the test set is empty");
  const k = model.classes.length;
  const confusion = Array.from({ length: k }, () => new Array(k).fill(0));
  test.rows.forEach((row, i) => {
    confusion[test.labels[i]][predict(model, row)] += 1;
  });
  const correct = confusion.reduce((s, r, c) => s + r[c], 0);
  const accuracy = correct / test.rows.length;
  weft.logMetric("accuracy", accuracy);

  const lines = [
    `# Wine cultivar classifier`,
    ``,
    `Held-out accuracy: **${(accuracy * 100).toFixed(1)}%** on ${test.rows.length} rows.`,
    ``,
    `| class | precision | recall | F1 | support |`,
    `|---|---|---|---|---|`,
  ];
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    const predicted = confusion.reduce((s, r) => s + r[c], 0);
    const support = confusion[c].reduce((s, v) => s + v, 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    const name = model.classes[c];
    weft.logMetric(`f1.${name}`, f1);
    lines.push(`| ${name} | ${precision.toFixed(3)} | ${recall.toFixed(3)} | ${f1.toFixed(3)} | ${support} |`);
  }
  lines.push(``, `Confusion (rows: true class, columns: predicted):`, ``);
  lines.push("```", ...confusion.map((r) => r.join("\t")), "```", ``);
  weft.writeOutput("report", lines.join("\n"));
  weft.logMetadata("confusion", confusion);
  console.log(`held-out accuracy ${accuracy.toFixed(3)} on ${test.rows.length} rows`);
});
