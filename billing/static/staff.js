// The new-invoice form prices itself as it is filled in; without JavaScript, "Price it" does the same.
(function () {
  'use strict';
  var form = document.getElementById('invoice-form');
  if (!form || !window.fetch) { return; }
  var timer = null;
  function preview() {
    var data = new FormData(form);
    data.set('action', 'preview');
    fetch(form.dataset.previewUrl, {method: 'POST', body: data, headers: {'X-Preview': '1'}, credentials: 'same-origin'})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var current = document.getElementById('quote-preview');
        var holder = document.createElement('div');
        holder.innerHTML = html;
        var fresh = holder.querySelector('#quote-preview');
        if (current && fresh) { current.replaceWith(fresh); }
      });
  }
  form.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(preview, 400); });
  form.addEventListener('change', function () { clearTimeout(timer); timer = setTimeout(preview, 100); });
}());
