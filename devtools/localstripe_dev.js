// Development extension appended to localstripe's Stripe.js double (devtools/localstripe_dev.py).
//
// localstripe's confirmCardPayment ignores the card that was typed and always opens its
// 3-D Secure modal, which then fails ("Bad request") for cards that need no authentication.
// This wrapper sends the typed card to the /_dev confirm route first, and opens the modal
// (the double's own confirmCardPayment) only when the intent really requires action. The pay
// page calls plain Stripe.js and works unchanged against real Stripe.
(function () {
  const makeStripe = Stripe;
  Stripe = (apiKey) => {
    const stripe = makeStripe(apiKey);
    const withModal = stripe.confirmCardPayment;
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const element = data && data.payment_method && data.payment_method.card;
      const card = element && element.value ? element.value.card : null;
      if (!card) {
        return {error: {type: 'validation_error', message: 'Enter your card details.'}};
      }
      const pi = clientSecret.match(/^(pi_\w+)_secret_/)[1];
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/_dev/payment_intents/${pi}/confirm_card`, {
        method: 'POST',
        body: JSON.stringify({key: apiKey, client_secret: clientSecret, card: card}),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 200 || body.error) {
        return {error: body.error || {type: 'api_error', message: 'The payment could not be made.'}};
      }
      if (body.status === 'requires_action') {
        return withModal(clientSecret, data);
      }
      return {paymentIntent: body};
    };
    return stripe;
  };
})();
