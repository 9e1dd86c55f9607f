// Copy buttons: <button class="copy-button" data-copy="ID"> copies the value of the input with that id.
(function () {
  'use strict';
  function copied(button, text) {
    button.textContent = text;
    setTimeout(function () { button.textContent = 'Copy'; }, 2000);
  }
  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('.copy-button') : null;
    if (!button) { return; }
    var input = document.getElementById(button.dataset.copy);
    if (!input) { return; }
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () { copied(button, 'Copied'); },
        function () { copied(button, 'Press Ctrl+C'); });
    } else {
      // Plain http on another host: the Clipboard API is off; the older command still works.
      copied(button, document.execCommand('copy') ? 'Copied' : 'Press Ctrl+C');
    }
  });
}());
