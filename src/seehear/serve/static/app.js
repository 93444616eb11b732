// seehear's page: no build step, no external files. Uploads go to /v1/models/NAME/predict or /transcribe as the
// raw body (to an audio-image model: multipart fields image and audio, the last of each picked); the live
// transcript streams float32 PCM at the model's rate over WS /v1/models/NAME/stream.
"use strict";
const $ = (id) => document.getElementById(id);
let models = [], current = null, live = null, pair = {};

function headers() { const k = $("key").value; return k ? { "X-API-Key": k } : {}; }
function status(text, error = false) { $("status").textContent = text; $("status").className = error ? "error" : "muted"; }

async function loadModels() {
  const r = await fetch("/v1/models");
  models = (await r.json()).models;
  $("model").innerHTML = models.map((m) => `<option>${m.name}</option>`).join("");
  $("keybox").hidden = !models.some((m) => m.auth);
  $("key").value = localStorage.getItem("seehear-key") || "";
  choose();
}

function choose() {
  current = models.find((m) => m.name === $("model").value) || models[0];
  if (!current) { status("no models served"); return; }
  const what = current.task === "transcribe" ? "transcribes speech" : `recognises ${current.modality}: ${current.labels.join(", ")}`;
  const both = current.modality === "audio-image";
  $("about").textContent = `${current.name} ${what} (${current.engine})` + (both ? ": give an image, a recording or both" : "");
  $("file").accept = both ? "image/*,audio/*" : current.modality === "image" ? "image/*" : current.modality === "frames" ? "image/gif,image/webp" : "audio/*";
  $("record").hidden = current.modality !== "audio" && !both;
  pair = {}; $("preview").hidden = true; $("player").hidden = true;
  $("live").hidden = !current.streaming;
  $("top").innerHTML = ""; $("final").textContent = ""; $("partial").textContent = "";
}

function showTop(top) {
  $("top").innerHTML = top.map((t) => `<li><span class="label">${escapeHtml(t.label)}</span>` +
    `<span class="bar" style="width:${(100 * t.probability).toFixed(1)}%"></span>` +
    `<span class="p">${(100 * t.probability).toFixed(1)}%</span></li>`).join("");
}
function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`); }

async function send(blob) {
  if (!current) return;
  const url = `/v1/models/${encodeURIComponent(current.name)}/${current.task === "transcribe" ? "transcribe" : "predict"}?top_k=5`;
  status("…");
  const t0 = performance.now();
  let payload = blob;
  if (current.modality === "audio-image") {  // keep the other input of the pair: both go as multipart fields
    pair[blob.type.startsWith("image/") ? "image" : "audio"] = blob;
    payload = new FormData();
    for (const [k, v] of Object.entries(pair)) payload.append(k, v, k);
  }
  const r = await fetch(url, { method: "POST", body: payload, headers: headers() });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) { status(body.error || `HTTP ${r.status}`, true); return; }
  status(`${Math.round(performance.now() - t0)} ms`);
  if (current.task === "transcribe") { $("final").textContent = body.text || "(no speech heard)"; $("partial").textContent = ""; }
  else showTop(body.top);
}

function pick(file) {
  if (!file) return;
  const url = URL.createObjectURL(file);
  // an <img> also plays a frames run's GIF/WebP
  const image = current.modality === "image" || current.modality === "frames" || (current.modality === "audio-image" && file.type.startsWith("image/"));
  if (current.modality !== "audio-image") { $("preview").hidden = !image; $("player").hidden = image; }
  if (image) { $("preview").src = url; $("preview").hidden = false; } else { $("player").src = url; $("player").hidden = false; }
  send(file);
}

// --- microphone --------------------------------------------------------------------------------------------
async function micNode(ctx, onBlock) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false } });
  const src = ctx.createMediaStreamSource(stream);
  await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
  const node = new AudioWorkletNode(ctx, "pcm-forwarder");
  node.port.onmessage = (e) => onBlock(e.data);
  src.connect(node);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true; stream.getTracks().forEach((t) => t.stop()); node.disconnect(); ctx.close();
  };
}

function wav(samples, rate) {  // 16-bit PCM WAV of float samples
  const b = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const w = (o, s) => [...s].forEach((c, i) => b.setUint8(o + i, c.charCodeAt(0)));
  w(0, "RIFF"); b.setUint32(4, 36 + 2 * samples.length, true); w(8, "WAVEfmt ");
  b.setUint32(16, 16, true); b.setUint16(20, 1, true); b.setUint16(22, 1, true); b.setUint32(24, rate, true);
  b.setUint32(28, 2 * rate, true); b.setUint16(32, 2, true); b.setUint16(34, 16, true); w(36, "data");
  b.setUint32(40, 2 * samples.length, true);
  samples.forEach((x, i) => b.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, x)) * 32767, true));
  return new Blob([b], { type: "audio/wav" });
}

async function record() {
  const spec = current.input.audio || current.input;  // an audio-image model: its audio input
  const rate = spec.sample_rate || 16000;
  const seconds = spec.clip_seconds || Math.min(5, spec.max_seconds || 5);
  const ctx = new AudioContext({ sampleRate: rate });
  const blocks = []; let n = 0;
  status(`recording ${seconds} s…`); $("record").disabled = true;
  const stop = await micNode(ctx, (b) => { blocks.push(b); n += b.length; });
  setTimeout(() => {
    stop(); $("record").disabled = false;
    const all = new Float32Array(n); let o = 0; for (const b of blocks) { all.set(b, o); o += b.length; }
    const blob = wav(all, rate); $("player").src = URL.createObjectURL(blob); $("player").hidden = false;
    send(blob);
  }, seconds * 1000);
}

async function toggleLive() {
  if (live) { live.end(); return; }
  const rate = current.stream_format.sample_rate;
  const key = $("key").value ? `&key=${encodeURIComponent($("key").value)}` : "";
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/v1/models/${encodeURIComponent(current.name)}/stream?dtype=f32${key}`);
  ws.binaryType = "arraybuffer";
  const ctx = new AudioContext({ sampleRate: rate });
  let stop = null, finals = [];
  $("final").textContent = ""; $("partial").textContent = "";
  live = { end: () => { if (stop) stop(); if (ws.readyState === 1) ws.send("end"); finish(); } };
  function finish() { live = null; $("live").classList.remove("on"); $("live").textContent = "live transcript"; }
  ws.onmessage = async (e) => {
    const m = JSON.parse(e.data);
    if (m.error) { status(m.error, true); return; }
    if (m.event === "ready") {
      status("listening…"); $("live").classList.add("on"); $("live").textContent = "stop";
      stop = await micNode(ctx, (b) => { if (ws.readyState === 1) ws.send(b.buffer); });
      return;
    }
    for (const f of m.final || []) finals.push(f.text);
    $("final").textContent = finals.join(" ");
    $("partial").textContent = m.partial || "";
    if (m.event === "final") status("done");
  };
  ws.onclose = () => { if (stop) stop(); stop = null; if (live) finish(); };
}

// --- wiring ------------------------------------------------------------------------------------------------
$("model").onchange = choose;
$("key").onchange = () => localStorage.setItem("seehear-key", $("key").value);
$("file").onchange = (e) => pick(e.target.files[0]);
$("record").onclick = () => record().catch((e) => { status(`microphone: ${e.message}`, true); $("record").disabled = false; });
$("live").onclick = () => toggleLive().catch((e) => status(`microphone: ${e.message}`, true));
const drop = $("drop");
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files[0]); };
loadModels().catch((e) => status(`cannot list models: ${e.message}`, true));
