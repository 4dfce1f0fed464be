// Progressive enhancement only: every page works without this file.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy-target]");
  if (!button) return;
  const input = document.getElementById(button.dataset.copyTarget);
  if (!input) return;
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (err) {
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});

// A form marked data-busy (a verification can wait on a slow server for seconds) says it is
// working and cannot be sent twice. Disabled after the submit event, so the browser has already
// taken the form's data.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const button = form.querySelector("button[type=submit]");
  if (!form.dataset.busy || !button) return;
  form.setAttribute("aria-busy", "true");
  button.dataset.idle = button.textContent;
  button.textContent = form.dataset.busy;
  setTimeout(() => { button.disabled = true; }, 0);
});

// Back on a page from the history, its forms work again.
window.addEventListener("pageshow", () => {
  document.querySelectorAll("form[aria-busy=true]").forEach((form) => {
    const button = form.querySelector("button[type=submit]");
    form.removeAttribute("aria-busy");
    if (button && button.dataset.idle) { button.textContent = button.dataset.idle; button.disabled = false; }
  });
});
