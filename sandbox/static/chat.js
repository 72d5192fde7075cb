// The sandbox chat page: polls /sandbox/state, renders Block Kit, and sends what a person
// types or clicks to the emulator, which signs it and delivers it to the app.
"use strict";

const params = new URLSearchParams(location.search);
const view = {
  user: params.get("user") || localStorage.getItem("sandbox.user") || "U0ALICE",
  channel: params.get("channel") || localStorage.getItem("sandbox.channel") || "C0ROLLOUT",
  state: null,
  lastJson: "",
  collapsed: new Set(),      // thread parents the person collapsed
  dismissed: new Set(),      // ephemerals the person dismissed
  threadTs: null,            // composer replies into this thread when set
  busy: false,
  drawnAt: 0,
  viewId: null,              // the modal (views.open) on screen, if any
  viewErrors: "",
};

const $ = (id) => document.getElementById(id);
const COLORS = ["#e8912d", "#2bac76", "#1264a3", "#9c27b0", "#e01e5a", "#36c5f0", "#4a154b"];
const EMOJI = {
  white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", rocket: "🚀",
  hourglass: "⌛", hourglass_flowing_sand: "⏳", stopwatch: "⏱️", alarm_clock: "⏰",
  snowflake: "❄️", wastebasket: "🗑️",
  double_vertical_bar: "⏸️", pause_button: "⏸️", arrow_forward: "▶️", rewind: "⏪",
  leftwards_arrow_with_hook: "↩️", arrows_counterclockwise: "🔄", repeat: "🔁",
  large_green_circle: "🟢", red_circle: "🔴", large_yellow_circle: "🟡", white_circle: "⚪",
  large_blue_circle: "🔵", black_circle: "⚫", green_square: "🟩", white_large_square: "⬜",
  large_green_square: "🟩", lock: "🔒", unlock: "🔓", tada: "🎉", rotating_light: "🚨",
  construction: "🚧", no_entry: "⛔", no_entry_sign: "🚫", information_source: "ℹ️",
  bar_chart: "📊", chart_with_upwards_trend: "📈", mag: "🔍", eyes: "👀", thumbsup: "👍",
  "+1": "👍", thumbsdown: "👎", wave: "👋", gear: "⚙️", clock1: "🕐", calendar: "📅",
  memo: "📝", traffic_light: "🚥", vertical_traffic_light: "🚦", checkered_flag: "🏁",
  sparkles: "✨", fire: "🔥", robot_face: "🤖", bust_in_silhouette: "👤", busts_in_silhouette: "👥",
  link: "🔗", question: "❓", exclamation: "❗", heavy_minus_sign: "➖", arrow_right: "➡️",
  arrow_up: "⬆️", arrow_down: "⬇️", scales: "⚖️", package: "📦", ship: "🚢", shield: "🛡️",
  stop_sign: "🛑", hammer_and_wrench: "🛠️", bulb: "💡", zap: "⚡", pushpin: "📌",
  round_pushpin: "📍", raised_hand: "✋", hand: "✋", bell: "🔔", no_bell: "🔕",
  small_blue_diamond: "🔹", small_orange_diamond: "🔸", large_blue_diamond: "🔷",
  fast_forward: "⏩", wrench: "🔧", hammer: "🔨", arrow_left: "⬅️", arrow_backward: "◀️",
  arrow_up_small: "🔼", arrow_down_small: "🔽", heavy_plus_sign: "➕", heavy_multiplication_x: "✖️",
  ballot_box_with_check: "☑️", negative_squared_cross_mark: "❎", grey_question: "❔",
  grey_exclamation: "❕", bangbang: "‼️", hourglass_done: "⌛", timer_clock: "⏲️",
  stop_button: "⏹️", record_button: "⏺️", play_or_pause_button: "⏯️", twisted_rightwards_arrows: "🔀",
  smile: "😄", smiley: "😃", grinning: "😀", slightly_smiling_face: "🙂", wink: "😉",
  thinking_face: "🤔", sweat_smile: "😅", joy: "😂", cry: "😢", scream: "😱", sob: "😭",
  ok_hand: "👌", clap: "👏", pray: "🙏", muscle: "💪", raised_hands: "🙌", point_right: "👉",
  point_left: "👈", point_up: "☝️", point_down: "👇", v: "✌️", heart: "❤️", star: "⭐",
  star2: "🌟", boom: "💥", "100": "💯", trophy: "🏆", medal: "🏅", party_popper: "🎉",
  see_no_evil: "🙈", skull: "💀", ghost: "👻", bug: "🐛", snail: "🐌", turtle: "🐢",
  rabbit: "🐇", coffee: "☕", beers: "🍻", cloud: "☁️", sunny: "☀️", umbrella: "☂️",
  computer: "💻", desktop_computer: "🖥️", floppy_disk: "💾", cd: "💿", inbox_tray: "📥",
  outbox_tray: "📤", clipboard: "📋", pencil: "📝", pencil2: "✏️", books: "📚", book: "📖",
  key: "🔑", mag_right: "🔎", satellite: "📡", microscope: "🔬", brain: "🧠", dart: "🎯",
  white_flag: "🏳️", triangular_flag_on_post: "🚩", speech_balloon: "💬", thought_balloon: "💭",
  loudspeaker: "📢", mega: "📣", email: "📧", envelope: "✉️", hourglass_not_done: "⏳",
  chart_with_downwards_trend: "📉", new: "🆕", ok: "🆗", sos: "🆘", cool: "🆒", free: "🆓",
  large_orange_circle: "🟠", large_purple_circle: "🟣", red_square: "🟥", yellow_square: "🟨",
  orange_square: "🟧", blue_square: "🟦", heavy_check: "✔️", recycle: "♻️", infinity: "♾️",
};

// ---------------------------------------------------------------- helpers

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function unescapeSlack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function emojify(html) {
  return html.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);
}

function userById(id) {
  return (view.state && view.state.users.find((u) => u.id === id)) || null;
}

function userName(id) {
  const u = userById(id);
  return u ? u.name : id;
}

function channelName(id) {
  const c = view.state && view.state.channels.find((ch) => ch.id === id);
  return c ? c.name : id;
}

function colorFor(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}

function avatar(id, cls) {
  const u = userById(id);
  const bot = u && u.is_bot;
  const label = bot ? (id === "USLACKBOT" ? "S" : "R") : (u ? u.name[0].toUpperCase() : "?");
  const bg = id === "USLACKBOT" ? "#36c5f0" : (bot ? "#4a154b" : colorFor(id));
  return `<div class="avatar ${cls || ""}" style="background:${bg}">${esc(label)}</div>`;
}

function timeOf(ts) {
  const d = new Date(parseFloat(ts) * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// Slack mrkdwn to HTML: <links|mentions>, ```pre```, `code`, *bold*, _italic_, ~strike~, > quote.
function mrkdwn(text) {
  const keep = [];
  const stash = (html) => `\u0000${keep.push(html) - 1}\u0000`;
  let s = String(text || "");
  s = s.replace(/```([\s\S]*?)```/g, (m, code) => stash(`<pre>${esc(unescapeSlack(code))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (m, code) => stash(`<code>${esc(unescapeSlack(code))}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (m, inner) => stash(angle(inner)));
  s = esc(unescapeSlack(s));
  s = s.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?!\w)/g, "$1<b>$2</b>");
  s = s.replace(/(^|[^\w])_(?!\s)([^_\n]+?)_(?!\w)/g, "$1<i>$2</i>");
  s = s.replace(/(^|[^\w~])~(?!\s)([^~\n]+?)~(?!\w)/g, "$1<s>$2</s>");
  s = s.replace(/(^|\n)&gt; ?([^\n]*)/g, "$1<blockquote>$2</blockquote>");
  s = emojify(s).replace(/\n/g, "<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
  return s.replace(/\u0000(\d+)\u0000/g, (m, i) => keep[Number(i)]);
}

function angle(inner) {
  const [target, label] = inner.split("|", 2);
  if (target.startsWith("@")) {
    return `<span class="mention">@${esc(label || userName(target.slice(1)))}</span>`;
  }
  if (target.startsWith("#")) {
    return `<span class="mention">#${esc(label || channelName(target.slice(1)))}</span>`;
  }
  if (target.startsWith("!subteam^")) {
    const id = target.slice(9);
    const name = label || "@" + ((view.state && (view.state.usergroups || {})[id]) || id);
    return `<span class="mention">${esc(name.startsWith("@") ? name : "@" + name)}</span>`;
  }
  if (target.startsWith("!date^")) return slackDate(target, label);
  if (target.startsWith("!")) {
    return `<span class="mention">@${esc(label || target.slice(1).split("^")[0])}</span>`;
  }
  if (/^(https?:|mailto:)/.test(target)) {
    return `<a href="${esc(target)}" target="_blank" rel="noopener">${esc(label || target)}</a>`;
  }
  return esc(`<${inner}>`);
}

// <!date^EPOCH^TOKENS(^link)|fallback>: the reader's local time, as Slack shows it.
function slackDate(target, fallback) {
  const [, epoch, tokens] = target.split("^");
  const when = new Date(Number(epoch) * 1000);
  if (!tokens || Number.isNaN(when.getTime())) return esc(fallback || "");
  const day = (d) => d.toDateString();
  const now = new Date();
  const relDay = (d) => {
    const offset = Math.round((new Date(day(d)) - new Date(day(now))) / 86400000);
    return offset === 0 ? "today" : offset === -1 ? "yesterday" : offset === 1 ? "tomorrow" : null;
  };
  const long = when.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
  const full = when.toLocaleDateString([], { year: "numeric", month: "long", day: "numeric" });
  const short = when.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
  const parts = {
    date_num: when.toISOString().slice(0, 10), date: full, date_short: short, date_long: long,
    date_pretty: relDay(when) || full, date_short_pretty: relDay(when) || short,
    date_long_pretty: relDay(when) || long,
    time: when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    time_secs: when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    ago: ago(when, now),
  };
  const text = tokens.replace(/\{(\w+)\}/g, (m, name) => (name in parts ? parts[name] : m));
  return `<span class="date" title="${esc(when.toString())}">${esc(text)}</span>`;
}

function ago(when, now) {
  const seconds = Math.round((when - now) / 1000);
  const size = Math.abs(seconds);
  const [n, unit] = size < 60 ? [size, "second"] : size < 3600 ? [Math.round(size / 60), "minute"]
    : size < 86400 ? [Math.round(size / 3600), "hour"] : [Math.round(size / 86400), "day"];
  if (size < 5) return "just now";
  const span = `${n} ${unit}${n === 1 ? "" : "s"}`;
  return seconds > 0 ? `in ${span}` : `${span} ago`;
}

function textObj(obj) {
  if (!obj) return "";
  if (typeof obj === "string") return mrkdwn(obj);
  if (obj.type === "plain_text") {
    return obj.emoji === false ? esc(obj.text || "") : emojify(esc(obj.text || ""));
  }
  return mrkdwn(obj.text || "");
}

// ---------------------------------------------------------------- Block Kit

function renderBlocks(msg) {
  return msg.blocks.map((b) => renderBlock(b, msg)).join("");
}

function renderBlock(block, msg) {
  switch (block.type) {
    case "header":
      return `<div class="bk-block bk-header">${textObj(block.text)}</div>`;
    case "section": {
      let main = block.text ? `<div class="text">${textObj(block.text)}</div>` : "";
      if (block.fields && block.fields.length) {
        main += `<div class="bk-fields">${block.fields
          .map((f) => `<div class="text">${textObj(f)}</div>`).join("")}</div>`;
      }
      const acc = block.accessory ? renderElement(block.accessory, block, msg) : "";
      return `<div class="bk-block bk-section"><div class="bk-section-main">${main}</div>${acc}</div>`;
    }
    case "context":
      return `<div class="bk-block bk-context">${(block.elements || []).map((e) =>
        e.type === "image"
          ? `<span>[${esc(e.alt_text || "image")}]</span>`
          : `<span class="text">${textObj(e)}</span>`).join("")}</div>`;
    case "divider":
      return `<hr class="bk-divider">`;
    case "actions":
      return `<div class="bk-block bk-actions">${(block.elements || [])
        .map((e) => renderElement(e, block, msg)).join("")}</div>`;
    case "image":
      return `<div class="bk-block bk-image">🖼 ${esc(block.alt_text || block.title?.text || "image")}</div>`;
    case "rich_text":
      return `<div class="bk-block text">${richText(block.elements || [])}</div>`;
    default:
      return `<div class="bk-block bk-unknown">[${esc(block.type)} block]</div>`;
  }
}

function richText(elements) {
  return elements.map((el) => {
    if (el.type === "rich_text_preformatted") return `<pre>${esc(flatText(el.elements))}</pre>`;
    if (el.type === "rich_text_quote") return `<blockquote>${esc(flatText(el.elements))}</blockquote>`;
    if (el.type === "rich_text_list") {
      return `<ul>${(el.elements || []).map((i) => `<li>${esc(flatText(i.elements))}</li>`).join("")}</ul>`;
    }
    return esc(flatText(el.elements || [])).replace(/\n/g, "<br>");
  }).join("");
}

function flatText(elements) {
  return (elements || []).map((e) => {
    if (e.type === "text" || e.type === "link") return e.text || e.url || "";
    if (e.type === "user") return "@" + userName(e.user_id);
    if (e.type === "emoji") return EMOJI[e.name] || `:${e.name}:`;
    return "";
  }).join("");
}

function renderElement(el, block, msg) {
  if (el.type === "button") {
    const style = el.style === "primary" ? "primary" : el.style === "danger" ? "danger" : "";
    const data = {
      ts: msg.ts, ephemeral: !!msg.ephemeral, block_id: block.block_id || "",
      action_id: el.action_id || "", value: el.value || "", confirm: el.confirm || null,
    };
    if (el.url) {
      return `<a class="bk-btn ${style}" href="${esc(el.url)}" target="_blank" rel="noopener"
        style="display:inline-flex;align-items:center;text-decoration:none">${textObj(el.text)}</a>`;
    }
    return `<button type="button" class="bk-btn ${style}" data-action-id="${esc(el.action_id || "")}"
      data-click='${esc(JSON.stringify(data))}'>${textObj(el.text)}</button>`;
  }
  if (el.type && el.type.endsWith("_select")) {
    return `<select class="bk-select" disabled><option>${textObj(el.placeholder) || "Select"}</option></select>`;
  }
  if (el.type === "overflow") return `<button class="bk-btn" disabled>⋯</button>`;
  return `<span class="bk-unknown">[${esc(el.type || "element")}]</span>`;
}

// ---------------------------------------------------------------- messages

function renderMessage(msg, opts) {
  const u = userById(msg.user);
  const name = u ? (u.is_bot ? u.real_name : u.name) : msg.user;
  const badge = msg.is_bot && msg.user !== "USLACKBOT" ? `<span class="badge">APP</span>` : "";
  const edited = msg.edited ? `<span class="edited">(edited)</span>` : "";
  const body = msg.blocks && msg.blocks.length
    ? renderBlocks(msg)
    : `<div class="text">${mrkdwn(msg.text)}</div>`;
  const only = msg.ephemeral
    ? `<div class="only-you">👁 Only visible to you<a data-dismiss="${esc(msg.ts)}">Dismiss</a></div>`
    : "";
  const reactions = (msg.reactions || []).length
    ? `<div class="reactions">${msg.reactions.map((r) =>
      `<span class="reaction">${EMOJI[r.name] || ":" + esc(r.name) + ":"} ${r.count}</span>`).join("")}</div>`
    : "";
  let thread = "";
  const replies = (opts && opts.replies) || [];
  if (replies.length) {
    const open = !view.collapsed.has(msg.ts);
    const last = replies[replies.length - 1];
    const n = replies.filter((r) => !r.ephemeral).length;
    const label = n ? `${n} ${n === 1 ? "reply" : "replies"}` : "Thread";
    thread = `<button class="thread-toggle" data-toggle="${esc(msg.ts)}">${open ? "▾" : "▸"} ${label}` +
      `<span class="last">Last reply ${timeOf(last.ts)}</span></button>`;
    if (open) thread += `<div class="thread">${replies.map((r) => renderMessage(r)).join("")}</div>`;
  }
  const actions = opts && opts.top && !msg.ephemeral
    ? `<div class="msg-actions"><button data-reply="${esc(msg.ts)}">Reply in thread</button></div>`
    : "";
  return `<div class="msg${msg.ephemeral ? " ephemeral" : ""}" data-ts="${esc(msg.ts)}">
    ${avatar(msg.user)}
    <div class="msg-body">
      ${only}
      <div class="meta"><span class="name">${esc(name)}</span>${badge}
        <span class="time" title="${esc(msg.ts)}">${timeOf(msg.ts)}</span>${edited}</div>
      ${body}${reactions}${thread}
    </div>${actions}
  </div>`;
}

function render() {
  const st = view.state;
  $("workspace-name").textContent = st.team.name;
  $("channels").innerHTML = st.channels.map((c) =>
    `<li data-channel="${esc(c.id)}" class="${c.id === st.channel ? "active" : ""}">` +
    `<span class="hash">#</span>${esc(c.name)}</li>`).join("");
  const picker = $("user-picker");
  const humans = st.users.filter((u) => !u.is_bot);
  const options = humans.map((u) =>
    `<option value="${esc(u.id)}"${u.id === view.user ? " selected" : ""}>${esc(u.name)} (${esc(u.real_name)})</option>`).join("");
  if (picker.innerHTML !== options) picker.innerHTML = options;
  const me = userById(view.user);
  $("me-avatar").outerHTML = avatar(view.user, "small").replace('class="avatar small"', 'id="me-avatar" class="avatar small"');
  $("me-title").textContent = me ? me.title : "";
  const cname = channelName(st.channel);
  $("channel-name").textContent = "# " + cname;
  $("composer").placeholder = view.threadTs ? "Reply in thread…" : `Message #${cname}  —  try /rollout help`;
  const status = $("app-status");
  status.className = st.events_url ? "" : "off";
  status.innerHTML = `<span class="dot"></span>` + (st.events_url
    ? `App connected: slash commands and clicks go to ${esc(st.events_url)}`
    : "No app connected (events_url unset)");

  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const scrollTop = box.scrollTop;
  const threaded = new Map();
  const items = st.messages.map((m) => ({ ts: m.ts, msg: m, replies: m.replies.slice() }));
  for (const item of items) threaded.set(item.ts, item);
  for (const e of st.ephemerals) {
    if (view.dismissed.has(e.ts)) continue;
    const parent = e.thread_ts && threaded.get(e.thread_ts);
    if (parent) parent.replies.push(e);
    else items.push({ ts: e.ts, msg: e, replies: [] });
  }
  for (const item of items) item.replies.sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
  items.sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
  box.innerHTML = items.length
    ? items.map((i) => renderMessage(i.msg, { replies: i.replies, top: true })).join("")
    : `<div class="empty">No messages in #${esc(cname)} yet. Type <code>/rollout help</code> below.</div>`;
  box.scrollTop = nearBottom ? box.scrollHeight : scrollTop;
}

// ---------------------------------------------------------------- talking to the emulator

async function refresh(force) {
  const q = new URLSearchParams({ channel: view.channel, user: view.user });
  try {
    const res = await fetch(`/sandbox/state?${q}`, { cache: "no-store" });
    const text = await res.text();
    // an unchanged state is drawn again now and then, so that "in 2 minutes" keeps moving
    if (!force && text === view.lastJson && Date.now() - view.drawnAt < 15000) return;
    view.lastJson = text;
    view.state = JSON.parse(text);
    view.drawnAt = Date.now();
    render();
    renderView();
  } catch (err) {
    toast(`Emulator unreachable: ${err}`);
  }
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let data;
  try { data = await res.json(); } catch (e) { data = { ok: false, error: `HTTP ${res.status}` }; }
  if (!data.ok) {
    toast(data.error || (data.status ? `The app answered HTTP ${data.status}` : "failed"));
  }
  await refresh(true);
  return data;
}

let toastTimer = null;
function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

function confirmDialog(confirm) {
  return new Promise((resolve) => {
    $("modal-title").innerHTML = textObj(confirm.title) || "Are you sure?";
    $("modal-text").innerHTML = textObj(confirm.text);
    const yes = $("modal-confirm");
    const no = $("modal-deny");
    yes.innerHTML = textObj(confirm.confirm) || "Confirm";
    no.innerHTML = textObj(confirm.deny) || "Cancel";
    yes.className = "bk-btn " + (confirm.style === "danger" ? "danger solid" : "primary");
    const backdrop = $("modal-backdrop");
    backdrop.hidden = false;
    const done = (answer) => {
      backdrop.hidden = true;
      yes.onclick = no.onclick = null;
      document.removeEventListener("keydown", onKey);
      resolve(answer);
    };
    const onKey = (e) => { if (e.key === "Escape") done(false); };
    document.addEventListener("keydown", onKey);
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
    yes.focus();
  });
}

async function click(button) {
  const data = JSON.parse(button.dataset.click);
  if (data.confirm && !(await confirmDialog(data.confirm))) return;
  button.disabled = true;
  try {
    await post("/sandbox/click", {
      user: view.user, channel: view.channel, message_ts: data.ts, action_id: data.action_id,
      value: data.value, block_id: data.block_id,
    });
  } finally {
    button.disabled = false;
  }
}

async function send(text) {
  text = text.trim();
  if (!text || view.busy) return;
  view.busy = true;
  $("send").disabled = true;
  try {
    if (text.startsWith("/")) {
      await post("/sandbox/command", { user: view.user, channel: view.channel, text });
    } else {
      await post("/sandbox/message", {
        user: view.user, channel: view.channel, text, thread_ts: view.threadTs,
      });
    }
    $("composer").value = "";
  } finally {
    view.busy = false;
    $("send").disabled = false;
    $("composer").focus();
  }
}

function setThread(ts) {
  view.threadTs = ts;
  $("thread-chip").hidden = !ts;
  if (ts) view.collapsed.delete(ts);
  refresh(true);
  $("composer").focus();
}

function remember() {
  localStorage.setItem("sandbox.user", view.user);
  localStorage.setItem("sandbox.channel", view.channel);
  const query = { user: view.user, channel: view.channel };
  if (SERVING) query.serving = SERVING;
  history.replaceState(null, "", `?${new URLSearchParams(query)}`);
}

// ---------------------------------------------------------------- canary controls
// The sandbox's simulated pools (`?serving=<url>`): make a canary worse and watch the
// metrics move in Prometheus. Plain-text bodies keep these simple cross-origin requests.

const SERVING = params.get("serving");

async function knobs(path, body) {
  try {
    const res = body === undefined ? await fetch(SERVING + path)
      : await fetch(SERVING + path, { method: "POST", body: JSON.stringify(body) });
    const data = await res.json();
    if (!res.ok) toast(data.error || `The serving world answered HTTP ${res.status}`);
    return res.ok ? data : null;
  } catch (err) {
    toast(`Serving world unreachable: ${err}`);
    return null;
  }
}

async function showKnobs() {
  const data = await knobs("/knobs");
  if (!data) return;
  const target = $("knob-target").value;
  const now = data.behaviours[target] || data.defaults;
  $("knob-error_rate").value = String(now.error_rate);
  $("knob-ttft").value = String(now.ttft);
  $("knob-ignore").checked = data.ignore_weights;
  const changed = Object.entries(data.behaviours).map(([name, b]) =>
    `${name}: errors ${Math.round(b.error_rate * 100)}%, TTFT ${b.ttft}s`);
  if (data.ignore_weights) changed.push("gateway ignores weights");
  $("knob-state").textContent = changed.length ? changed.join("\n") : "all healthy";
}

if (SERVING) {
  $("canary").hidden = false;
  for (const name of ["error_rate", "ttft"]) {
    $(`knob-${name}`).addEventListener("change", async (e) => {
      await knobs(`/knobs/${$("knob-target").value}`, { [name]: Number(e.target.value) });
      showKnobs();
    });
  }
  $("knob-target").addEventListener("change", showKnobs);
  $("knob-ignore").addEventListener("change", async (e) => {
    await knobs("/gateway", { ignore_weights: e.target.checked });
    showKnobs();
  });
  $("knob-reset").addEventListener("click", async () => {
    await knobs("/knobs/reset", {});
    showKnobs();
  });
  showKnobs();
}

// ---------------------------------------------------------------- modals (views.open)

// The app's modal for this person, drawn once (so typing survives the polling) and again
// only when the app answers a submission with errors.
function renderView() {
  const open = (view.state.views || [])[0] || null;
  const backdrop = $("view-backdrop");
  if (!open) {
    backdrop.hidden = true;
    view.viewId = null;
    return;
  }
  const errors = JSON.stringify(open.errors || {});
  if (open.id === view.viewId && errors === view.viewErrors) return;
  const typed = open.id === view.viewId ? currentInputs() : {};
  view.viewId = open.id;
  view.viewErrors = errors;
  $("view-title").innerHTML = textObj(open.title);
  $("view-submit").innerHTML = textObj(open.submit) || "Submit";
  $("view-close").innerHTML = textObj(open.close) || "Cancel";
  $("view-blocks").innerHTML = open.blocks.map((b) => b.type === "input"
    ? inputBlock(b, (open.errors || {})[b.block_id], typed[b.block_id])
    : renderBlock(b, { ts: "", ephemeral: true })).join("");
  backdrop.hidden = false;
  const first = $("view-blocks").querySelector("input,textarea");
  if (first) first.focus();
}

function inputBlock(block, error, value) {
  const el = block.element || {};
  const optional = block.optional ? ` <span class="optional">(optional)</span>` : "";
  const attrs = `data-block-id="${esc(block.block_id)}" placeholder="${esc((el.placeholder || {}).text || "")}"` +
    (el.max_length ? ` maxlength="${Number(el.max_length)}"` : "");
  const field = el.multiline
    ? `<textarea rows="3" ${attrs}>${esc(value || "")}</textarea>`
    : `<input type="text" ${attrs} value="${esc(value || "")}">`;
  return `<div class="bk-input"><label>${textObj(block.label)}${optional}</label>${field}` +
    (error ? `<div class="error">${esc(error)}</div>` : "") + `</div>`;
}

function currentInputs() {
  const typed = {};
  for (const el of $("view-blocks").querySelectorAll("[data-block-id]")) {
    typed[el.dataset.blockId] = el.value;
  }
  return typed;
}

async function submitView() {
  if (!view.viewId) return;
  $("view-submit").disabled = true;
  try {
    await post("/sandbox/view_submit", { user: view.user, view_id: view.viewId, values: currentInputs() });
  } finally {
    $("view-submit").disabled = false;
  }
}

async function closeView() {
  if (!view.viewId) return;
  await post("/sandbox/view_close", { user: view.user, view_id: view.viewId });
}

// ---------------------------------------------------------------- wiring

document.addEventListener("click", (e) => {
  const target = e.target.closest("[data-click],[data-toggle],[data-dismiss],[data-reply],[data-channel],.chip");
  if (!target) return;
  if (target.dataset.click) click(target);
  else if (target.dataset.toggle) {
    const ts = target.dataset.toggle;
    if (view.collapsed.has(ts)) view.collapsed.delete(ts); else view.collapsed.add(ts);
    refresh(true);
  } else if (target.dataset.dismiss) {
    view.dismissed.add(target.dataset.dismiss);
    refresh(true);
  } else if (target.dataset.reply) {
    setThread(target.dataset.reply);
  } else if (target.dataset.channel) {
    view.channel = target.dataset.channel;
    setThread(null);
    remember();
  } else if (target.classList.contains("chip")) {
    $("composer").value = target.textContent;
    $("composer").focus();
  }
});

$("user-picker").addEventListener("change", (e) => {
  view.user = e.target.value;
  view.dismissed.clear();
  remember();
  refresh(true);
});
$("composer-form").addEventListener("submit", (e) => {
  e.preventDefault();
  send($("composer").value);
});
$("thread-cancel").addEventListener("click", () => setThread(null));
$("view").addEventListener("submit", (e) => {
  e.preventDefault();
  submitView();
});
$("view-close").addEventListener("click", () => closeView());
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && view.viewId && $("modal-backdrop").hidden) closeView();
});

remember();
refresh(true);
setInterval(() => refresh(false), 1000);
