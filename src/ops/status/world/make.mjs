#!/usr/bin/env node
// Regenerates countries.json (world map for the status page) from Natural Earth
// 1:50m admin-0 countries, as packaged by world-atlas on npm.
//
//   node src/ops/status/world/make.mjs           # writes countries.json beside this file
//   node src/ops/status/world/make.mjs --check   # exits 1 if countries.json is not what it would write
//
// Needs node (>= 18) and npm with access to the npm registry; installs the pinned
// packages below into a temporary directory and deletes it afterwards. The output is
// the same bytes on every run (the input file is checked against a pinned SHA-256).
//
// Projection (the status page places markers with the same formula):
//   plate carrée cropped to LAT_TOP..LAT_BOTTOM (Antarctica left out):
//   x = (lon + 180) / 360 * WIDTH
//   y = (LAT_TOP - lat) / (LAT_TOP - LAT_BOTTOM) * HEIGHT
// WIDTH/360 == HEIGHT/(LAT_TOP-LAT_BOTTOM), so one degree is the same length both ways.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGES = {
  "world-atlas": "2.0.2", // ISC; Natural Earth 4.1.0 (public domain) as TopoJSON
  "topojson-client": "3.1.0", // ISC; TopoJSON -> GeoJSON, merge
  "topojson-simplify": "3.0.3", // ISC; Visvalingam weights on shared arcs
  "i18n-iso-countries": "7.14.0", // MIT; ISO 3166-1 numeric -> alpha-2
};
const SOURCE_FILE = "world-atlas/countries-50m.json";
const SOURCE_SHA256 = "04342cdc1e3016bcd7db1630de95684d67b79fe3c8c460321e87aef469502394";

const WIDTH = 1000;
const HEIGHT = 400;
const LAT_TOP = 84;
const LAT_BOTTOM = -60;
// Visvalingam threshold: points whose effective triangle is smaller than this many
// square degrees are dropped (1 map unit = 0.36 degrees, so 1 unit^2 = 0.1296 deg^2).
const MIN_WEIGHT = 0.02;
// Islands and holes smaller than this (map units^2, after projection) are dropped,
// except a country's largest polygon, which is always kept.
const MIN_RING_AREA = 0.5;
// Half-diagonal (map units) of the diamond drawn for a country whose every ring
// rounds away at 0.1-unit precision.
const DOT_RADIUS = 0.5;

// Features without an ISO 3166-1 numeric id in world-atlas (Natural Earth ISO_N3 -99).
const CODE_BY_NAME = {
  Kosovo: "XK", // user-assigned code used by the EU, SWIFT and GeoIP databases
  Somaliland: "SO",
  "N. Cyprus": "CY",
  "Siachen Glacier": "IN", // Indian-administered
};
// Natural Earth admin-0 folds these territories into their sovereign country; they
// have their own ISO 3166-1 codes (and GeoIP returns those), so split their polygons
// out by bounding box [west, south, east, north] of the polygon's outer ring.
const SPLITS = {
  France: [
    ["GF", [-55, 1, -51, 6]],
    ["GP", [-62, 15.8, -61, 16.6]],
    ["MQ", [-61.3, 14.3, -60.7, 15]],
    ["RE", [55, -21.5, 56, -20.8]],
    ["YT", [45, -13.1, 45.3, -12.6]],
  ],
  Norway: [
    ["SJ", [10, 74, 35, 81]], // Svalbard, Bjørnøya
    ["SJ", [-10, 70.5, -7, 71.5]], // Jan Mayen
  ],
  Netherlands: [["BQ", [-69, 12, -62.9, 17.7]]], // Bonaire, Sint Eustatius, Saba
  "New Zealand": [["TK", [-173, -9.5, -171, -8.5]]],
  "Indian Ocean Ter.": [
    ["CX", [105, -11, 106, -10]],
    ["CC", [96, -12.5, 97.5, -12]],
  ],
};
const SPLIT_ALL = new Set(["Indian Ocean Ter."]); // every polygon must be matched

const here = dirname(fileURLToPath(import.meta.url));
const outPath = join(here, "countries.json");
const check = process.argv.includes("--check");

const tmp = mkdtempSync(join(tmpdir(), "fedns-world-"));
let out;
try {
  writeFileSync(join(tmp, "package.json"), JSON.stringify({ private: true, dependencies: PACKAGES }));
  execFileSync(
    "npm",
    ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--package-lock=false", "--loglevel=error"],
    { cwd: tmp, stdio: ["ignore", "ignore", "inherit"] },
  );
  const require = createRequire(join(tmp, "package.json"));
  for (const [name, version] of Object.entries(PACKAGES)) {
    const got = require(`${name}/package.json`).version;
    if (got !== version) throw new Error(`${name}: installed ${got}, pinned ${version}`);
  }
  const raw = readFileSync(require.resolve(SOURCE_FILE));
  const sha = createHash("sha256").update(raw).digest("hex");
  if (sha !== SOURCE_SHA256) throw new Error(`${SOURCE_FILE}: sha256 ${sha}, pinned ${SOURCE_SHA256}`);
  out = build(JSON.parse(raw), require("topojson-client"), require("topojson-simplify"), require("i18n-iso-countries"));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

if (check) {
  const cur = existsSync(outPath) ? readFileSync(outPath, "utf8") : "";
  if (cur !== out) {
    console.error(`${outPath} is out of date; run: node src/ops/status/world/make.mjs`);
    process.exit(1);
  }
  console.log(`${outPath} is up to date`);
} else {
  writeFileSync(outPath, out);
  console.log(`wrote ${outPath} (${Buffer.byteLength(out)} bytes)`);
}

function build(topology, topojson, simplify, iso) {
  const geoms = topology.objects.countries.geometries;

  // Outer-ring bbox of one TopoJSON polygon (arc indexes), in degrees.
  const polyBbox = (arcs) => {
    const ring = topojson.feature(topology, { type: "Polygon", arcs: [arcs[0]] }).geometry.coordinates[0];
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of ring) {
      b[0] = Math.min(b[0], x), b[1] = Math.min(b[1], y), b[2] = Math.max(b[2], x), b[3] = Math.max(b[3], y);
    }
    return b;
  };
  const inside = (b, box) => b[0] >= box[0] && b[1] >= box[1] && b[2] <= box[2] && b[3] <= box[3];

  // code -> list of TopoJSON polygons (each a list of rings of arc indexes)
  const parts = new Map();
  const add = (code, polys) => {
    if (!parts.has(code)) parts.set(code, []);
    parts.get(code).push(...polys);
  };
  for (const g of geoms) {
    const name = g.properties.name;
    const polys = g.type === "Polygon" ? [g.arcs] : g.type === "MultiPolygon" ? g.arcs : [];
    let code = CODE_BY_NAME[name] ?? (g.id !== undefined ? iso.numericToAlpha2(g.id) : undefined);
    const split = SPLITS[name];
    if (split) {
      const rest = [];
      for (const p of polys) {
        const b = polyBbox(p);
        const hit = split.find(([, box]) => inside(b, box));
        if (hit) add(hit[0], [p]);
        else rest.push(p);
      }
      for (const [c] of split) if (!parts.has(c)) throw new Error(`${name}: nothing split out for ${c}`);
      if (SPLIT_ALL.has(name)) {
        if (rest.length) throw new Error(`${name}: ${rest.length} polygons matched no split box`);
        continue;
      }
      polys.length = 0;
      polys.push(...rest);
    }
    if (!code) throw new Error(`no ISO 3166-1 alpha-2 code for ${JSON.stringify(name)} (id ${g.id})`);
    add(code, polys);
  }

  // Visvalingam weights per shared arc, so neighbours keep matching borders.
  const weighted = simplify.presimplify(topology);

  const project = ([lon, lat]) => [
    Math.round(((lon + 180) / 360) * WIDTH * 10),
    Math.round(((LAT_TOP - lat) / (LAT_TOP - LAT_BOTTOM)) * HEIGHT * 10),
  ]; // in tenths of a map unit

  const countries = {};
  const dropped = [];
  const dots = [];
  for (const code of [...parts.keys()].sort()) {
    const merged = topojson.merge(weighted, [{ type: "MultiPolygon", arcs: parts.get(code) }]);
    const polys = []; // [{rings: [[ [x10,y10], ... ]], area}] in projected tenths
    let dot = null; // [x10, y10, n] centre of what collapsed, for countries too small to draw
    for (const poly of merged.coordinates) {
      const outLat = poly[0].map((p) => p[1]);
      if (Math.max(...outLat) < LAT_BOTTOM || Math.min(...outLat) > LAT_TOP) continue; // off the map
      const rings = [];
      poly.forEach((ring, i) => {
        for (const piece of cutAntimeridian(thin(ring))) {
          for (const [, lat] of piece) {
            if (lat < LAT_BOTTOM || lat > LAT_TOP) throw new Error(`${code}: crosses the crop at lat ${lat}`);
          }
          const pts = dedupe(piece.map(project));
          if (!dot && i === 0) dot = pts.reduce((a, q) => [a[0] + q[0], a[1] + q[1], a[2] + 1], [0, 0, 0]);
          if (pts.length >= 3) rings.push({ pts, hole: i > 0, area: Math.abs(area(pts)) / 100 });
        }
      });
      const outers = rings.filter((r) => !r.hole);
      if (outers.length) polys.push({ rings, area: Math.max(...outers.map((r) => r.area)) });
    }
    if (!polys.length && dot) {
      // Every ring rounded to fewer than 3 points (Cocos Islands): a diamond of
      // DOT_RADIUS around their mean point, so the country is still there to colour.
      const [cx, cy] = [Math.round(dot[0] / dot[2]), Math.round(dot[1] / dot[2])];
      const r = DOT_RADIUS * 10;
      const pts = [[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]];
      polys.push({ rings: [{ pts, hole: false, area: Math.abs(area(pts)) / 100 }], area: 0 });
      dots.push(code);
    }
    if (!polys.length) {
      dropped.push(code);
      continue;
    }
    const largest = polys.reduce((a, b) => (b.area > a.area ? b : a));
    let d = "";
    let cur = null;
    for (const p of polys) {
      if (p !== largest && p.area < MIN_RING_AREA) continue;
      for (const r of p.rings) {
        if (r.area < MIN_RING_AREA && !(p === largest && !r.hole)) continue;
        const [first, ...rest] = r.pts;
        d += cur ? "m" + pair(first[0] - cur[0], first[1] - cur[1]) : "M" + pair(first[0], first[1]);
        let prev = first;
        let seq = "";
        for (const q of rest) {
          seq += pair(q[0] - prev[0], q[1] - prev[1], seq);
          prev = q;
        }
        d += (seq ? "l" + seq : "") + "z";
        cur = first; // after z the current point is the subpath's start
      }
    }
    countries[code] = d;
  }
  if (dropped.join() !== "AQ") throw new Error(`unexpected countries off the map: ${dropped}`);
  if (process.env.WORLD_VERBOSE) console.error(`dots: ${dots.join(" ") || "none"}; off the map: ${dropped.join(" ")}`);

  const meta = {
    width: WIDTH,
    height: HEIGHT,
    projection: "equirectangular",
    lat_top: LAT_TOP,
    lat_bottom: LAT_BOTTOM,
    lon_left: -180,
    lon_right: 180,
    formula: `x=(lon+180)/360*${WIDTH}; y=(${LAT_TOP}-lat)/${LAT_TOP - LAT_BOTTOM}*${HEIGHT}`,
    source: `Natural Earth 1:50m admin-0 countries (public domain) via world-atlas@${PACKAGES["world-atlas"]}; see LICENSE.md`,
  };
  let s = JSON.stringify(meta).slice(0, -1) + ',"countries":{\n';
  s += Object.entries(countries)
    .map(([k, v]) => JSON.stringify(k) + ":" + JSON.stringify(v))
    .join(",\n");
  return s + "\n}}\n";
}

// Keep the points whose Visvalingam weight passes MIN_WEIGHT (arc ends always do).
// A ring that would collapse keeps its heaviest points instead, so tiny countries
// (Singapore, Bahrain, ...) still get a shape.
function thin(ring) {
  const kept = ring.filter((p) => p[2] >= MIN_WEIGHT);
  if (kept.length >= 4) return kept.map((p) => [p[0], p[1]]);
  const inner = ring.slice(1, -1).map((p, i) => ({ p, i })).sort((a, b) => b.p[2] - a.p[2] || a.i - b.i);
  const keep = new Set(inner.slice(0, 3).map((e) => e.i + 1));
  return ring.filter((_, i) => i === 0 || i === ring.length - 1 || keep.has(i)).map((p) => [p[0], p[1]]);
}

// Rings in the source are stitched across the antimeridian (Russia's Chukotka, Fiji):
// unwrap longitudes so the ring is continuous, then clip it to [-180, 180] at its
// own position and shifted by +/-360, so each side is drawn at its edge of the map.
function cutAntimeridian(ring) {
  const u = [ring[0].slice()];
  for (let i = 1; i < ring.length; i++) {
    let dl = ring[i][0] - ring[i - 1][0];
    dl -= 360 * Math.round(dl / 360);
    u.push([u[i - 1][0] + dl, ring[i][1]]);
  }
  const drift = u[u.length - 1][0] - u[0][0];
  if (Math.abs(drift) > 1e-9) throw new Error(`ring circles the pole (lon drift ${drift})`);
  const lo = Math.min(...u.map((p) => p[0]));
  const hi = Math.max(...u.map((p) => p[0]));
  // (A ring may touch the antimeridian with points at both -180 and 180: unwrapped,
  // they are one meridian.)
  if (lo >= -180 && hi <= 180) return [u];
  const pieces = [];
  for (const shift of [0, 360, -360]) {
    let r = u.map(([x, y]) => [x + shift, y]);
    r = clip(r, (p) => p[0] >= -180, -180);
    r = clip(r, (p) => p[0] <= 180, 180);
    if (r.length >= 3 && Math.abs(area(r)) > 1e-9) pieces.push(r); // not just a sliver along the edge
  }
  return pieces;
}

// Sutherland–Hodgman against the meridian x = edge; ring may be open or closed.
function clip(ring, inside, edge) {
  const pts = ring.length > 1 && ring[0][0] === ring.at(-1)[0] && ring[0][1] === ring.at(-1)[1] ? ring.slice(0, -1) : ring;
  const out = [];
  for (let i = 0; i < pts.length; i++) {
    const a = pts[(i + pts.length - 1) % pts.length];
    const b = pts[i];
    const ia = inside(a);
    const ib = inside(b);
    if (ib !== ia) out.push([edge, a[1] + ((b[1] - a[1]) * (edge - a[0])) / (b[0] - a[0])]);
    if (ib) out.push(b);
  }
  return out;
}

// Drop repeated points and the closing point (z closes the subpath).
function dedupe(pts) {
  const out = [];
  for (const p of pts) {
    const q = out.at(-1);
    if (!q || q[0] !== p[0] || q[1] !== p[1]) out.push(p);
  }
  while (out.length > 1 && out[0][0] === out.at(-1)[0] && out[0][1] === out.at(-1)[1]) out.pop();
  return out;
}

function area(pts) {
  let s = 0;
  for (let i = 0; i < pts.length; i++) {
    const a = pts[i];
    const b = pts[(i + 1) % pts.length];
    s += a[0] * b[1] - a[1] * b[0];
  }
  return s / 2;
}

// Numbers in tenths -> shortest SVG text ("12.3", "-.5", "4"); a separator only
// where the next number does not start with "-".
function num(t) {
  const neg = t < 0;
  const a = Math.abs(t);
  const s = a % 10 === 0 ? String(a / 10) : (a < 10 ? "" : String(Math.floor(a / 10))) + "." + (a % 10);
  return (neg ? "-" : "") + s;
}
function pair(x, y, before = "") {
  const sx = num(x);
  const sy = num(y);
  const sep = (s) => (s.startsWith("-") ? "" : " ");
  return (before ? sep(sx) : "") + sx + sep(sy) + sy;
}
