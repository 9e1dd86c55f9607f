// The pay page: a Stripe.js card Element and confirmCardPayment, nothing else.
(function () {
  'use strict';
  var form = document.getElementById('pay-form');
  if (!form) { return; }
  // Stripe(pk) as a call, not `new Stripe(pk)`: Stripe.js accepts both, its test doubles only the call.
  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create('card');
  card.mount('#card-element');
  var button = document.getElementById('pay-button');
  var message = document.getElementById('pay-message');

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    button.disabled = true;
    message.className = '';
    message.textContent = 'Processing your payment…';
    stripe.confirmCardPayment(form.dataset.clientSecret, {payment_method: {card: card}}).then(function (result) {
      if (result.error) {
        message.className = 'error';
        message.textContent = (result.error.message || 'The payment did not go through.') +
          ' Your card has not been charged. You can try again or use another card.';
        button.disabled = false;
        return;
      }
      message.textContent = 'Payment accepted. One moment…';
      window.location.assign(form.dataset.returnUrl + '?payment_intent=' + encodeURIComponent(result.paymentIntent.id));
    });
  });
}());
