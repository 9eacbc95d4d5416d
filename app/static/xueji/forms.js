// Page behaviour without inline handlers (the CSP allows no inline script): a form with data-confirm asks first,
// a button with data-print prints the page.
document.addEventListener("submit", function (ev) {
  var message = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) { ev.preventDefault(); }
}, true);
document.addEventListener("click", function (ev) {
  if (ev.target.closest && ev.target.closest("[data-print]")) { window.print(); }
});
