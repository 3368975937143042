// npm fhir-kit-client (pinned 2.0.3) against a real node, as a backend service.
// usage: NODE_PATH=<repo>/node_modules node fhir_kit.cjs <fhir-base> <bearer-token> <tag>
// Prints one JSON object: {name: {ok: true, ...what it saw} | {ok: false, error}} per step;
// a failing step does not stop the others (each builds its own data where it can).
const path = require("path");
const { pathToFileURL } = require("url");

async function loadClient() {
  // fhir-kit-client is ESM only: import() it from NODE_PATH (import() ignores NODE_PATH).
  const roots = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean);
  for (const root of roots) {
    try {
      const entry = path.join(root, "fhir-kit-client", "dist", "index.js");
      return (await import(pathToFileURL(entry).href)).Client;
    } catch (err) {
      if (err.code !== "ERR_MODULE_NOT_FOUND") throw err;
    }
  }
  return (await import("fhir-kit-client")).Client;
}

const LOINC = "http://loinc.org";
const observation = (subject, value) => ({
  resourceType: "Observation",
  status: "final",
  code: { coding: [{ system: LOINC, code: "8867-4" }] },
  subject: { reference: subject },
  valueQuantity: { value, unit: "/min" },
});
const idOf = (location) => location.split("/")[1];

async function main() {
  const [base, token, tag] = process.argv.slice(2);
  const Client = await loadClient();
  const client = new Client({ baseUrl: base, bearerToken: token });
  const out = {};
  const step = async (name, fn) => {
    try {
      out[name] = { ok: true, ...(await fn()) };
    } catch (err) {
      const status = err.response && err.response.status;
      const body = err.response && JSON.stringify(err.response.data).slice(0, 400);
      out[name] = { ok: false, error: `${err.message}${status ? ` ${status} ${body}` : ""}` };
    }
  };
  const family = `Kit${tag}`;
  let pid = null;

  await step("crud", async () => {
    const created = await client.create({
      resourceType: "Patient",
      body: { resourceType: "Patient", name: [{ family }], gender: "female" },
    });
    pid = created.id;
    const read = await client.read({ resourceType: "Patient", id: pid });
    const updated = await client.update({
      resourceType: "Patient", id: pid, body: { ...read, gender: "other" },
    });
    const first = await client.vread({ resourceType: "Patient", id: pid, version: "1" });
    const gone = await client.create({
      resourceType: "Patient", body: { resourceType: "Patient", name: [{ family: `${family}X` }] },
    });
    await client.delete({ resourceType: "Patient", id: gone.id });
    let afterDelete = null;
    try {
      await client.read({ resourceType: "Patient", id: gone.id });
    } catch (err) {
      afterDelete = err.response.status;
    }
    return {
      id: pid, createdVersion: created.meta.versionId, readFamily: read.name[0].family,
      updatedVersion: updated.meta.versionId, updatedGender: updated.gender,
      vreadGender: first.gender, afterDelete,
    };
  });

  await step("history", async () => {
    const bundle = await client.history({ resourceType: "Patient", id: pid });
    return {
      type: bundle.type,
      versions: bundle.entry.map((e) => e.resource.meta.versionId),
    };
  });

  await step("patch", async () => {
    const patched = await client.patch({
      resourceType: "Patient", id: pid,
      jsonPatch: [
        { op: "replace", path: "/gender", value: "male" },
        { op: "add", path: "/birthDate", value: "1960-07-08" },
      ],
    });
    const read = await client.read({ resourceType: "Patient", id: pid });
    return {
      version: patched.meta.versionId, gender: read.gender, birthDate: read.birthDate,
      family: read.name[0].family,
    };
  });

  await step("batch", async () => {
    const bundle = await client.batch({
      body: {
        resourceType: "Bundle", type: "batch",
        entry: [
          {
            resource: observation(`Patient/${pid}`, 61),
            request: { method: "POST", url: "Observation" },
          },
          { request: { method: "GET", url: `Patient/${pid}` } },
          { request: { method: "GET", url: `Patient/kit-missing-${tag}` } },
        ],
      },
    });
    return {
      type: bundle.type,
      statuses: bundle.entry.map((e) => e.response.status.split(" ")[0]),
      readId: bundle.entry[1].resource.id,
    };
  });

  await step("transaction", async () => {
    const bundle = await client.transaction({
      body: {
        resourceType: "Bundle", type: "transaction",
        entry: [
          {
            fullUrl: "urn:uuid:0d0a2c3e-1111-4a5b-9c8d-000000000001",
            resource: { resourceType: "Patient", name: [{ family: `${family}Tx` }] },
            request: { method: "POST", url: "Patient" },
          },
          {
            resource: observation("urn:uuid:0d0a2c3e-1111-4a5b-9c8d-000000000001", 62),
            request: { method: "POST", url: "Observation" },
          },
        ],
      },
    });
    const [patient, obs] = bundle.entry.map((e) => idOf(e.response.location));
    const stored = await client.read({ resourceType: "Observation", id: obs });
    return {
      type: bundle.type, statuses: bundle.entry.map((e) => e.response.status.split(" ")[0]),
      patient, subject: stored.subject.reference,
    };
  });

  await step("compartment", async () => {
    const extra = await client.create({
      resourceType: "Observation", body: observation(`Patient/${pid}`, 63),
    });
    const bundle = await client.compartmentSearch({
      resourceType: "Observation",
      compartment: { resourceType: "Patient", id: pid },
    });
    return {
      type: bundle.type, extra: extra.id,
      subjects: [...new Set((bundle.entry || []).map((e) => e.resource.subject.reference))],
      ids: (bundle.entry || []).map((e) => e.resource.id),
    };
  });

  await step("paging", async () => {
    const owner = await client.create({
      resourceType: "Patient", body: { resourceType: "Patient", name: [{ family: `${family}Pg` }] },
    });
    const created = [];
    for (const value of [64, 65, 66]) {
      const obs = await client.create({
        resourceType: "Observation", body: observation(`Patient/${owner.id}`, value),
      });
      created.push(obs.id);
    }
    const pages = [];
    let bundle = await client.search({
      resourceType: "Observation", searchParams: { subject: `Patient/${owner.id}`, _count: 2 },
    });
    while (bundle) {
      pages.push((bundle.entry || []).map((e) => e.resource.id));
      bundle = await client.nextPage({ bundle });
    }
    return { created, pages };
  });

  await step("system-search", async () => {
    const bundle = await client.systemSearch({ searchParams: { _id: pid } });
    return { ids: (bundle.entry || []).map((e) => `${e.resource.resourceType}/${e.resource.id}`) };
  });

  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
