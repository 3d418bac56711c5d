// params.js — sampler pickers and parameter inputs built from the sampler
// registry as Go declares it (core/sampler Info and Param, sent by the worker
// as engine.Samplers(): Sampler.samplers in diffuse.js). The page (app.js)
// and <diffusion-sampler> both build their controls here, so neither keeps
// its own list of samplers, names, ranges or defaults.
//
// A sampler is {name, display, summary, stochastic, order, defaultSteps,
// params}; a parameter {name, label, doc, kind: 'int'|'float'|'choice',
// default, min, max, choices, suggested, modelDefault, continuous}.

/** The registry samplers that run a model: its info's `samplers` (from
 * engine.Info.Samplers: flow and consistency samplers need their kind of
 * model), or all of them before a model is loaded. */
export function forModel(samplers, info) {
  const ok = info?.samplers;
  return ok ? samplers.filter((s) => ok.includes(s.name)) : samplers;
}

/** Fills a <select> with the samplers (value: registry name, text: display
 * name) and selects `wanted`, or `fallback`, or the first. */
export function fillSamplerSelect(select, samplers, wanted, fallback = 'ddim') {
  select.replaceChildren();
  for (const s of samplers) {
    const o = document.createElement('option');
    o.value = s.name;
    o.textContent = s.display || s.name;
    o.title = s.summary;
    select.append(o);
  }
  const has = (n) => samplers.some((s) => s.name === n);
  select.value = has(wanted) ? wanted : has(fallback) ? fallback : samplers[0]?.name ?? '';
}

/** The sampler named `name` in the list, or undefined. */
export function samplerInfo(samplers, name) {
  return samplers?.find((s) => s.name === name);
}

/** The sampler's parameter `name`, or undefined. */
export function param(info, name) {
  return info?.params.find((p) => p.name === name);
}

/** Whether the sampler runs on a grid of steps (not adaptive). */
export function takesSteps(info) {
  return !!param(info, 'steps');
}

/** The sampler's own parameters: all but steps and guidance, which forms
 * give fields of their own; on a discrete schedule, without the ones only
 * continuous-time schedules read. */
export function ownParams(info, { discrete = false } = {}) {
  return (info?.params || []).filter((p) => p.name !== 'steps' && p.name !== 'guidance' && !(discrete && p.continuous));
}

/** The value a form starts a parameter at (a string): empty where zero
 * means the model's own value, else the registry's suggested value or its
 * default. */
export function startValue(p) {
  if (p.kind === 'choice') return p.choices[0] ?? '';
  const v = p.suggested || p.default;
  return p.modelDefault && !v ? '' : String(v);
}

/** An input for parameter p: a <select> of its choices or a number input
 * with its range; id and name set, value the start value unless given. */
export function paramInput(p, { id, value } = {}) {
  let input;
  if (p.kind === 'choice') {
    input = document.createElement('select');
    for (const c of p.choices) {
      const o = document.createElement('option');
      o.value = c;
      o.textContent = c || "model's default";
      input.append(o);
    }
  } else {
    input = document.createElement('input');
    input.type = 'number';
    input.step = p.kind === 'int' ? '1' : 'any';
    input.min = String(p.min);
    input.max = String(p.max);
    if (p.modelDefault) input.placeholder = "model's";
  }
  if (id) input.id = id;
  input.name = p.name;
  input.title = p.doc;
  input.value = value ?? startValue(p);
  return input;
}

/** The hint under a parameter's input: its doc, and where a form starts
 * elsewhere than the library's default, both values. */
export function paramHint(p) {
  return p.suggested ? `${p.doc} (default here ${p.suggested}; the library's ${p.default} can take hundreds of network calls)` : p.doc;
}

/** The request fields (diffuse.js sample options) of the sampler's own
 * parameter values {name: string}: eta and sigmas have fields of their
 * own, the rest go in params; empty values are left out (the default). */
export function requestFields(info, values) {
  const out = { eta: 0, sigmas: '', params: {} };
  for (const p of ownParams(info)) {
    const raw = values[p.name];
    if (raw === undefined || raw === null || raw === '') continue;
    if (p.name === 'sigmas') out.sigmas = String(raw);
    else if (p.kind === 'choice') continue;
    else if (!Number.isFinite(Number(raw))) continue;
    else if (p.name === 'eta') out.eta = Number(raw);
    else out.params[p.name] = Number(raw);
  }
  return out;
}
