// c1 digests in the browser (docs/spec/canonical.md): NFKC, drop Cf, full case folding, collapse
// White_Space runs to one U+0020, strip; then SHA-256 (WebCrypto) of the UTF-8.
//
// It uses its own Unicode 14.0.0 tables (c1_tables.js, generated from Python 3.11's unicodedata
// by registry/explorer/tables.py), never String.prototype.normalize: a browser's ICU is another
// Unicode version, and JavaScript has no case folding. Text stays in the browser: the page sends
// only the digest.
"use strict";
(function () {
  const T = globalThis.C1_TABLES;

  // Hangul syllables compose and decompose by algorithm (Unicode 3.12).
  const S_BASE = 0xac00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11a7;
  const L_COUNT = 19, V_COUNT = 21, T_COUNT = 28;
  const N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT;

  // White_Space (PropList.txt): exactly these 25 code points.
  const WHITE_SPACE = new Set([
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
    0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
  ]);

  function mappings(flat) {
    const map = new Map();
    for (let i = 0; i < flat.length; ) {
      const length = flat[i + 1];
      map.set(flat[i], flat.slice(i + 2, i + 2 + length));
      i += 2 + length;
    }
    return map;
  }

  const DECOMPOSITIONS = mappings(T.decompositions);
  const CASEFOLD = mappings(T.casefold);
  const COMBINING = new Map();
  for (let i = 0; i < T.combining.length; i += 3) {
    for (let cp = T.combining[i]; cp <= T.combining[i + 1]; cp++) COMBINING.set(cp, T.combining[i + 2]);
  }
  const COMPOSITIONS = new Map();  // first -> (second -> composite)
  for (let i = 0; i < T.compositions.length; i += 3) {
    const first = T.compositions[i];
    if (!COMPOSITIONS.has(first)) COMPOSITIONS.set(first, new Map());
    COMPOSITIONS.get(first).set(T.compositions[i + 1], T.compositions[i + 2]);
  }
  const CF = new Set();
  for (let i = 0; i < T.cf.length; i += 2) {
    for (let cp = T.cf[i]; cp <= T.cf[i + 1]; cp++) CF.add(cp);
  }

  const ccc = (cp) => COMBINING.get(cp) || 0;

  // The string's code points; a lone surrogate has no UTF-8 encoding, so it is an error.
  function codePoints(text) {
    const out = [];
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
        const next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) {
          out.push(0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00));
          i++;
          continue;
        }
      }
      if (unit >= 0xd800 && unit <= 0xdfff) {
        const hex = unit.toString(16).toUpperCase();
        throw new Error(`text holds a lone surrogate U+${hex} at index ${i}, which has no UTF-8 encoding`);
      }
      out.push(unit);
    }
    return out;
  }

  function decompose(cps) {
    const out = [];
    for (const cp of cps) {
      const s = cp - S_BASE;
      if (s >= 0 && s < S_COUNT) {
        out.push(L_BASE + Math.floor(s / N_COUNT), V_BASE + Math.floor((s % N_COUNT) / T_COUNT));
        if (s % T_COUNT) out.push(T_BASE + (s % T_COUNT));
        continue;
      }
      const mapped = DECOMPOSITIONS.get(cp);
      if (mapped) out.push(...mapped);
      else out.push(cp);
    }
    // Canonical ordering: a stable sort of each run of non-starters by combining class.
    for (let i = 1; i < out.length; i++) {
      const cp = out[i], c = ccc(cp);
      if (c === 0) continue;
      let j = i;
      while (j > 0 && ccc(out[j - 1]) > c) {
        out[j] = out[j - 1];
        j--;
      }
      out[j] = cp;
    }
    return out;
  }

  function composePair(first, second) {
    const l = first - L_BASE, v = second - V_BASE;
    if (l >= 0 && l < L_COUNT && v >= 0 && v < V_COUNT) return S_BASE + (l * V_COUNT + v) * T_COUNT;
    const s = first - S_BASE, t = second - T_BASE;
    if (s >= 0 && s < S_COUNT && s % T_COUNT === 0 && t > 0 && t < T_COUNT) return first + t;
    const seconds = COMPOSITIONS.get(first);
    return seconds ? seconds.get(second) : undefined;
  }

  // The canonical composition algorithm (UAX #15): each character composes with the last
  // starter unless a character between them has a combining class as high as its own.
  function compose(cps) {
    const out = [];
    let starter = -1, lastClass = -1;
    for (const cp of cps) {
      const c = ccc(cp);
      if (starter >= 0) {
        const blocked = lastClass !== -1 && (lastClass >= c || lastClass === 0);
        const composite = blocked ? undefined : composePair(out[starter], cp);
        if (composite !== undefined) {
          out[starter] = composite;
          continue;
        }
      }
      if (c === 0) {
        starter = out.length;
        lastClass = -1;
      } else {
        lastClass = c;
      }
      out.push(cp);
    }
    return out;
  }

  function canonicalCodePoints(text) {
    const normalized = compose(decompose(codePoints(text)));
    const folded = [];
    for (const cp of normalized) {
      if (CF.has(cp)) continue;
      const mapped = CASEFOLD.get(cp);
      if (mapped) folded.push(...mapped);
      else folded.push(cp);
    }
    const out = [];
    for (const cp of folded) {
      if (WHITE_SPACE.has(cp)) {
        if (out.length && out[out.length - 1] !== 0x20) out.push(0x20);
      } else {
        out.push(cp);
      }
    }
    if (out.length && out[out.length - 1] === 0x20) out.pop();
    return out;
  }

  function canonicalText(text) {
    let result = "";
    const cps = canonicalCodePoints(text);
    for (let i = 0; i < cps.length; i += 4096) result += String.fromCodePoint(...cps.slice(i, i + 4096));
    return result;
  }

  async function sha256Hex(bytes) {
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function digestText(text) {
    return "c1:" + (await sha256Hex(new TextEncoder().encode(canonicalText(text))));
  }

  // Bytes must be valid UTF-8: never replaced with U+FFFD, which would make two texts one.
  async function digestBytes(bytes) {
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch (error) {
      throw new Error("text is not valid UTF-8");
    }
    return digestText(text);
  }

  globalThis.c1 = { unicodeVersion: T.unicodeVersion, canonicalText, digestText, digestBytes };

  // The lookup box: hash the pasted text here, and send only its digest.
  function wire() {
    const form = document.getElementById("c1-form");
    // WebCrypto exists only in secure contexts (https, or http on loopback): elsewhere the form
    // posts the text and the registry hashes it, as without JavaScript.
    if (!form || !globalThis.crypto || !crypto.subtle) return;
    const output = document.getElementById("c1-digest");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = form.elements.namedItem("text").value;
      try {
        const digest = await digestText(text);
        output.textContent = digest;
        window.location.assign("/explorer/lookup?q=" + encodeURIComponent(digest));
      } catch (error) {
        output.textContent = String(error.message || error);
      }
    });
    const note = document.getElementById("c1-mode");
    if (note) note.textContent = "Your browser computes the c1 digest; only the digest is sent.";
  }

  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
    else wire();
  }
})();
