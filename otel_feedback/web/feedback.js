// otel-feedback: end users rate an answer from the page. One ES module, no dependencies.
//
//   import { sendFeedback } from "/feedback/feedback.js";   // also defines <otel-feedback>
//   <otel-feedback token="..."></otel-feedback>
//
// The endpoint defaults to where this module was served from (the mounted app), so a page
// on the same origin needs no configuration.

const DEFAULT_ENDPOINT = new URL(".", import.meta.url).href;

/**
 * Send feedback for the run a token was minted for.
 * Resolves to {id}; rejects with an Error whose `status` is the HTTP status (0: no answer)
 * and whose `field` names what the endpoint refused.
 */
export async function sendFeedback({
  endpoint = DEFAULT_ENDPOINT,
  token,
  score,
  value,
  comment,
  correction,
} = {}) {
  const body = { token };
  if (score !== undefined && score !== null) body.score = score;
  if (value !== undefined && value !== null) body.value = value;
  if (comment) body.comment = comment;
  if (correction !== undefined && correction !== null) body.correction = correction;
  let response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      // The token is the credential: cookies are neither needed nor sent.
      credentials: "omit",
    });
  } catch (cause) {
    const error = new Error("feedback not sent: no answer from the endpoint", { cause });
    error.status = 0;
    throw error;
  }
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, waitress's own text/plain 413): the status says enough.
  }
  if (answer === null || typeof answer !== "object") answer = {};
  if (!response.ok) {
    const error = new Error(answer.error || `feedback refused (${response.status})`);
    error.status = response.status;
    error.field = answer.field;
    throw error;
  }
  return answer;
}

/** What an end user is told when feedback was not sent; the details go to the event. */
export function friendlyMessage(error) {
  const { status, field } = error;
  if (!status) return "No connection — try again.";
  if (status === 413) return "Your comment is too long.";
  if (field === "token" && (status === 400 || status === 403)) {
    return "Couldn't send your feedback. Please reload the page and try again.";
  }
  if (status === 429) return "Your feedback was changed too many times; it was not updated.";
  return "Couldn't send your feedback. Please try again later.";
}

// A drawn icon, not an emoji: pages and systems without an emoji font show it too.
// (The thumb of Material Icons, Apache-2.0.)
const THUMB = `<svg viewBox="0 0 24 24" width="1em" height="1em" aria-hidden="true" focusable="false">
<path fill="currentColor" d="M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z"/></svg>`;

const TEMPLATE = `
<style>
  :host {
    display: block;
    font: var(--otel-feedback-font, inherit);
    color: var(--otel-feedback-color, inherit);
  }
  .row { display: flex; gap: var(--otel-feedback-gap, 0.5em); align-items: center; flex-wrap: wrap; }
  button {
    font: inherit;
    cursor: pointer;
    border: 1px solid var(--otel-feedback-border, #c8c8d0);
    background: var(--otel-feedback-background, transparent);
    color: inherit;
    border-radius: var(--otel-feedback-radius, 6px);
    padding: 0.3em 0.7em;
  }
  button[aria-pressed="true"] {
    background: var(--otel-feedback-accent, #3558d6);
    border-color: var(--otel-feedback-accent, #3558d6);
    color: var(--otel-feedback-accent-text, #fff);
  }
  button:focus-visible, textarea:focus-visible {
    outline: 2px solid var(--otel-feedback-accent, #3558d6);
    outline-offset: 2px;
  }
  button:disabled { opacity: 0.6; cursor: default; }
  .thumb { font-size: 1.15em; line-height: 1; display: inline-flex; padding: 0.35em 0.6em; }
  .thumb svg.down { transform: rotate(180deg); }
  .comment { display: none; margin-top: var(--otel-feedback-gap, 0.5em); }
  :host([data-rated]) .comment { display: block; }
  label { display: block; font-size: 0.9em; margin-bottom: 0.25em; }
  textarea {
    box-sizing: border-box;
    width: 100%;
    min-height: 3.5em;
    font: inherit;
    border: 1px solid var(--otel-feedback-border, #c8c8d0);
    border-radius: var(--otel-feedback-radius, 6px);
    padding: 0.4em;
  }
  .status { font-size: 0.9em; min-height: 1.3em; margin-top: 0.25em; }
  .status.error { color: var(--otel-feedback-error, #b3261e); }
</style>
<div class="row" role="group" aria-label="Rate this answer">
  <span class="prompt" part="prompt">Was this helpful?</span>
  <button type="button" class="thumb" data-score="1" aria-pressed="false"
          aria-label="Helpful" title="Helpful">${THUMB}</button>
  <button type="button" class="thumb" data-score="0" aria-pressed="false"
          aria-label="Not helpful" title="Not helpful">${THUMB.replace("<svg", '<svg class="down"')}</button>
</div>
<div class="comment">
  <label for="comment">Comment (optional)</label>
  <textarea id="comment" maxlength="2000"></textarea>
  <div class="row"><button type="button" class="send">Send feedback</button></div>
</div>
<div class="status" role="status" aria-live="polite"></div>
`;

/**
 * <otel-feedback token="..." [endpoint="..."] [prompt="..."] [no-comment]>
 * Thumbs up (score 1) or down (score 0), then an optional comment and Send; without a
 * comment box (no-comment), a thumb sends at once. Fires "feedback-sent" with
 * detail {id, score, comment}, and "feedback-error" with detail {status, field, message}
 * (the endpoint's own words, also given to console.debug); the user sees a short message.
 */
export class OtelFeedback extends HTMLElement {
  static get observedAttributes() {
    return ["prompt"];
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML = TEMPLATE;
    this._score = null;
    this._sending = false; // a send is under way
    this._again = false; // a click came meanwhile: send what is chosen when it ends
    this._sent = null; // {token, score, comment} last sent
    const root = this.shadowRoot;
    this._thumbs = [...root.querySelectorAll(".thumb")];
    this._comment = root.querySelector("textarea");
    this._send = root.querySelector(".send");
    this._status = root.querySelector(".status");
    for (const thumb of this._thumbs) {
      thumb.addEventListener("click", () => this._rate(Number(thumb.dataset.score)));
    }
    this._send.addEventListener("click", () => this.send());
  }

  attributeChangedCallback(name, _old, value) {
    if (name === "prompt") this.shadowRoot.querySelector(".prompt").textContent = value ?? "";
  }

  get score() {
    return this._score;
  }

  _rate(score) {
    this._score = score;
    for (const thumb of this._thumbs) {
      thumb.setAttribute("aria-pressed", String(Number(thumb.dataset.score) === score));
    }
    this.setAttribute("data-rated", "");
    if (this.hasAttribute("no-comment")) {
      this.send();
    } else {
      this._comment.focus();
    }
  }

  /**
   * Send the chosen rating and comment; again after a change, it updates the same feedback.
   * A click while a send is under way is taken when it ends, and what was sent last is not
   * sent again: a double click sends once, and fires one "feedback-sent".
   */
  async send() {
    if (this._score === null) return;
    if (this._sending) {
      this._again = true;
      return;
    }
    const comment = this.hasAttribute("no-comment") ? "" : this._comment.value.trim();
    const score = this._score;
    const token = this.getAttribute("token");
    if (this._sent && this._sent.token === token && this._sent.score === score && this._sent.comment === comment) {
      return; // already sent: the status line says so
    }
    this._sending = true;
    this._send.disabled = true;
    this._show("Sending…", false);
    try {
      const { id } = await sendFeedback({
        endpoint: this.getAttribute("endpoint") || DEFAULT_ENDPOINT,
        token,
        score,
        comment,
      });
      this._sent = { token, score, comment };
      const rated = score === 1 ? "helpful" : "not helpful";
      this._show(comment ? `Sent: ${rated}, “${comment}”. Thank you!` : `Sent: ${rated}. Thank you!`, false);
      this.dispatchEvent(
        new CustomEvent("feedback-sent", { detail: { id, score, comment }, bubbles: true, composed: true }),
      );
    } catch (error) {
      // The user reads a short message; the developer gets the endpoint's own words.
      console.debug("otel-feedback: not sent:", error.status, error.field, error.message);
      this._show(friendlyMessage(error), true);
      this.dispatchEvent(
        new CustomEvent("feedback-error", {
          detail: { status: error.status, field: error.field, message: error.message },
          bubbles: true,
          composed: true,
        }),
      );
    } finally {
      this._sending = false;
      this._send.disabled = false;
    }
    if (this._again) {
      this._again = false;
      await this.send();
    }
  }

  _show(text, isError) {
    // textContent, never innerHTML: the comment is the user's own text.
    this._status.textContent = text;
    this._status.classList.toggle("error", isError);
  }
}

if (!customElements.get("otel-feedback")) customElements.define("otel-feedback", OtelFeedback);
