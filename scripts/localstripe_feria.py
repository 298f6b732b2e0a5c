"""localstripe with the Stripe endpoints Feria needs that localstripe lacks.

Run by scripts/localstripe.sh as `python scripts/localstripe_feria.py --port 8420`. It
imports localstripe (a pinned version: this file reaches into its internals), adds to the
same aiohttp application, in Stripe's wire format:

* Connect accounts: POST /v1/accounts, GET /v1/accounts/{id}.
* Transfers: POST /v1/transfers, GET /v1/transfers/{id}.
* Idempotency: the Idempotency-Key header on POST requests, as Stripe documents it (the
  first result is saved and replayed with `Idempotent-Replayed: true`; the same key with
  other parameters is a 400 `idempotency_error`). localstripe ignores the header.
* A `Request-Id` header on every response, as Stripe sends one.
* Test hooks under /_config/ (localstripe's own prefix for test-only routes, no API key):
  GET /_config/feria reports this extension's version (the start script checks it), and
  POST /_config/accounts/{id}/complete_onboarding stands in for the account holder
  finishing Stripe's hosted onboarding, which no API call can do.

The one change to localstripe's own endpoints: payment intents accept `description` and
`transfer_group`, and refunds `reason` — Stripe parameters that localstripe refuses as
unexpected. They are checked, stored and returned; nothing else about those objects
changes.

It also keeps the store in memory only (localstripe pickles the whole store to /tmp on
every write, which grows quadratically on a long-lived test server) and listens on
127.0.0.1 only.
See docs/STRIPE.md for what differs from api.stripe.com.
"""

import argparse
import hashlib
import json
import logging
import os
import random
import socket
import string
import time
from urllib.parse import parse_qsl

from aiohttp import web

from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.resources import (BalanceTransaction, StripeObject, store,
                                   try_convert_to_bool, try_convert_to_int)

EXTENSION_VERSION = hashlib.sha256(
    open(os.path.abspath(__file__), 'rb').read()).hexdigest()[:16]

ACCOUNT_TYPES = ('express', 'custom', 'standard')
CAPABILITY_NAMES = ('card_payments', 'transfers')


def random_id(n):
    return ''.join(random.choice(string.ascii_letters + string.digits)
                   for _ in range(n))


def invalid(message, param=None, code=None, status=400):
    contents = {}
    if param is not None:
        contents['param'] = param
    if code is not None:
        contents['code'] = code
    return UserError(status, message, contents)


def no_such(kind, id, param):
    return invalid("No such %s: '%s'" % (kind, id), param=param,
                   code='resource_missing', status=404 if param == 'id'
                   else 400)


# -- Connect accounts ------------------------------------------------------

class Account(StripeObject):
    object = 'account'
    _id_prefix = 'acct_'

    def __init__(self, type=None, country=None, email=None,
                 business_type=None, capabilities=None, metadata=None,
                 default_currency=None, **kwargs):
        if kwargs:
            raise invalid('Received unknown parameter: %s'
                          % ', '.join(sorted(kwargs.keys())),
                          param=sorted(kwargs.keys())[0])
        if type not in ACCOUNT_TYPES:
            raise invalid('Invalid type: must be one of express, custom, '
                          'or standard', param='type')
        if country is not None and (not isinstance(country, str)
                                    or len(country) != 2):
            raise invalid('Invalid country', param='country')
        if email is not None and not isinstance(email, str):
            raise invalid('Invalid email', param='email')
        if business_type is not None and business_type not in (
                'individual', 'company', 'non_profit', 'government_entity'):
            raise invalid('Invalid business_type', param='business_type')
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid('Invalid metadata', param='metadata')
        requested = []
        if capabilities is not None:
            if not isinstance(capabilities, dict):
                raise invalid('Invalid capabilities', param='capabilities')
            for name, value in capabilities.items():
                if name not in CAPABILITY_NAMES:
                    raise invalid('Unsupported capability: %s' % name,
                                  param='capabilities[%s]' % name)
                if not isinstance(value, dict) or set(value) != {'requested'}:
                    raise invalid('Invalid capability',
                                  param='capabilities[%s]' % name)
                if try_convert_to_bool(value['requested']) is True:
                    requested.append(name)
        if type == 'custom' and not requested:
            # Stripe: "You must request at least one capability".
            raise invalid('Custom accounts must request at least one '
                          'capability.', param='capabilities')

        # All exceptions must be raised before this point.
        super().__init__()

        self.type = type
        self.country = (country or 'US').upper()
        self.email = email
        self.business_type = business_type
        self.default_currency = (default_currency or 'usd').lower()
        self.metadata = metadata or {}
        self.capabilities = {name: 'inactive' for name in requested}
        self.charges_enabled = False
        self.payouts_enabled = False
        self.details_submitted = False
        self.requirements = {
            'currently_due': ['business_type', 'external_account',
                              'tos_acceptance.date', 'tos_acceptance.ip'],
            'disabled_reason': 'requirements.past_due',
        }

    def _complete_onboarding(self):
        self.details_submitted = True
        self.charges_enabled = True
        self.payouts_enabled = True
        self.capabilities = {name: 'active' for name in self.capabilities}
        if self.type == 'standard':
            self.capabilities = {name: 'active' for name in CAPABILITY_NAMES}
        self.requirements = {'currently_due': [], 'disabled_reason': None}

    @classmethod
    def _api_retrieve(cls, id):
        obj = store.get(cls.object + ':' + id)
        if obj is None:
            raise no_such('account', id, 'id')
        return obj

    @classmethod
    def _api_update(cls, id, **data):
        raise UserError(500, 'Not implemented')

    @classmethod
    def _api_delete(cls, id):
        raise UserError(500, 'Not implemented')


# -- Transfers -------------------------------------------------------------

class Transfer(StripeObject):
    object = 'transfer'
    _id_prefix = 'tr_'

    def __init__(self, amount=None, currency=None, destination=None,
                 transfer_group=None, description=None, metadata=None,
                 **kwargs):
        if kwargs:
            raise invalid('Received unknown parameter: %s'
                          % ', '.join(sorted(kwargs.keys())),
                          param=sorted(kwargs.keys())[0])
        amount = try_convert_to_int(amount)
        if not isinstance(amount, int) or amount <= 0:
            raise invalid('Invalid positive integer', param='amount')
        if not isinstance(currency, str) or len(currency) != 3:
            raise invalid('Invalid currency', param='currency')
        currency = currency.lower()
        if not isinstance(destination, str) or not destination:
            raise invalid('Missing required param: destination.',
                          param='destination')
        for name, value in (('transfer_group', transfer_group),
                            ('description', description)):
            if value is not None and not isinstance(value, str):
                raise invalid('Invalid %s' % name, param=name)
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid('Invalid metadata', param='metadata')

        account = store.get('account:' + destination)
        if account is None:
            raise no_such('destination', destination, 'destination')
        if account.capabilities.get('transfers') != 'active':
            raise invalid(
                'Your destination account needs to have at least one of '
                'the following capabilities enabled: transfers, '
                'crypto_transfers, legacy_payments',
                param='destination',
                code='insufficient_capabilities_for_transfer')
        if amount > available_balance(currency):
            raise invalid(
                'You have insufficient available funds in your Stripe '
                'account. Try adding funds directly to your available '
                'balance by creating Charges using the 4000000000000077 '
                'test card.', code='balance_insufficient')

        # All exceptions must be raised before this point.
        super().__init__()

        self.amount = amount
        self.amount_reversed = 0
        self.currency = currency
        self.destination = destination
        self.destination_payment = 'py_' + random_id(24)
        self.transfer_group = transfer_group
        self.description = description
        self.metadata = metadata or {}
        self.reversed = False

    @classmethod
    def _api_update(cls, id, **data):
        raise UserError(500, 'Not implemented')

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, 'Method Not Allowed')


async def create_reversal(request):
    """POST /v1/transfers/{id}/reversals: takes (part of) a transfer back from the
    connected account into the platform's balance, as Stripe does."""
    transfer = Transfer._api_retrieve(request.match_info['id'])
    data = await server.get_post_data(request) or {}
    data.pop('expand', None)
    unknown = sorted(set(data) - {'amount', 'description', 'metadata'})
    if unknown:
        raise invalid('Received unknown parameter: %s' % ', '.join(unknown),
                      param=unknown[0])
    left = transfer.amount - transfer.amount_reversed
    amount = try_convert_to_int(data.get('amount', left))
    if not isinstance(amount, int) or amount <= 0:
        raise invalid('Invalid positive integer', param='amount')
    if amount > left:
        raise invalid('Amount (%d) is greater than unreversed amount on '
                      'transfer (%d)' % (amount, left), param='amount')
    metadata = data.get('metadata') or {}
    if not isinstance(metadata, dict):
        raise invalid('Invalid metadata', param='metadata')
    transfer.amount_reversed += amount
    transfer.reversed = transfer.amount_reversed == transfer.amount
    reversal = {
        'id': 'trr_' + random_id(24),
        'object': 'transfer_reversal',
        'amount': amount,
        'currency': transfer.currency,
        'transfer': transfer.id,
        'created': int(time.time()),
        'description': data.get('description'),
        'metadata': metadata,
    }
    reversals = getattr(transfer, '_reversals', [])
    reversals.append(reversal)
    transfer._reversals = reversals
    return server.json_response(reversal)


def available_balance(currency):
    """The platform's available balance in one currency, in minor units.

    localstripe records a balance transaction for each captured charge (available at
    once) and each refund; transfers leave through here. localstripe's own
    GET /v1/balance is a fixed sample and is not used."""
    total = 0
    for key, value in list(store.items()):
        if key.startswith('balance_transaction:') and \
                isinstance(value, BalanceTransaction) and \
                value.currency.lower() == currency:
            total += value.amount
        elif key.startswith('transfer:') and isinstance(value, Transfer) \
                and value.currency == currency:
            total -= value.amount - value.amount_reversed
    return total


# -- Parameters localstripe refuses ----------------------------------------

REFUND_REASONS = ('duplicate', 'fraudulent', 'requested_by_customer')


def accept_parameters(cls, names, allowed=None):
    """Lets `cls` take the string parameters `names`, stored and exported as given."""
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        extra = {name: kwargs.pop(name, None) for name in names}
        for name, value in extra.items():
            if value is None:
                continue
            if not isinstance(value, str) or (
                    allowed and name in allowed and value not in allowed[name]):
                raise invalid('Invalid %s' % name, param=name)
        original(self, *args, **kwargs)
        for name, value in extra.items():
            setattr(self, name, value)

    cls.__init__ = __init__


# -- Idempotency -----------------------------------------------------------

# (API key, idempotency key) -> ('pending', fingerprint) or
# ('done', fingerprint, status, body, request id)
_idempotent = {}
# Responses that mean the endpoint did not start executing: Stripe saves no result.
_NOT_SAVED = (400, 401, 403, 404, 409, 429)


def _fingerprint(request, body):
    if request.content_type == 'application/json':
        params = body.decode('utf-8', 'replace')
    else:
        params = sorted(parse_qsl(body.decode('utf-8', 'replace'),
                                  keep_blank_values=True))
    return hashlib.sha256(json.dumps(
        [request.method, request.path, params]).encode('utf-8')).hexdigest()


def _error(status, message, type='invalid_request_error', code=None):
    error = {'type': type, 'message': message}
    if code is not None:
        error['code'] = code
    return server.json_response({'error': error}, status=status)


@web.middleware
async def idempotency_middleware(request, handler):
    key = request.headers.get('Idempotency-Key')
    if request.method != 'POST' or key is None:
        return await run(request, handler)
    if len(key) > 255:
        return _error(400, 'Idempotency-Key must be at most 255 characters '
                      'long.', type='idempotency_error')
    scope = (request.headers.get('Authorization', ''), key)
    body = await request.read()
    fingerprint = _fingerprint(request, body)
    saved = _idempotent.get(scope)
    if saved is not None:
        if saved[1] != fingerprint:
            return _error(
                400, 'Keys for idempotent requests can only be used with '
                'the same parameters they were first used with. Try using '
                "a key other than '%s' if you meant to execute a different "
                'request.' % key, type='idempotency_error')
        if saved[0] == 'pending':
            return _error(
                409, 'There is currently another in-progress request using '
                'this Idempotency-Key. Please try again later.',
                code='idempotency_key_in_use')
        _, _, status, text, request_id = saved
        response = web.Response(status=status, text=text,
                                content_type='application/json')
        response.headers['Idempotent-Replayed'] = 'true'
        response.headers['Original-Request'] = request_id
        return response

    _idempotent[scope] = ('pending', fingerprint)
    try:
        response = await run(request, handler)
    except BaseException:
        _idempotent.pop(scope, None)
        raise
    if response.status in _NOT_SAVED or getattr(response, 'text', None) is None:
        _idempotent.pop(scope, None)
    else:
        _idempotent[scope] = ('done', fingerprint, response.status,
                              response.text,
                              response.headers.get('Request-Id', ''))
    response.headers['Idempotent-Replayed'] = 'false'
    return response


async def run(request, handler):
    try:
        response = await handler(request)
    except UserError as e:
        response = e.to_response()
    response.headers['Request-Id'] = 'req_' + random_id(14)
    return response


# -- Routes ----------------------------------------------------------------

async def add_request_id(request, response):
    # Stripe sends a Request-Id on every response, replays and errors included.
    if 'Request-Id' not in response.headers:
        response.headers['Request-Id'] = 'req_' + random_id(14)


async def extension_info(request):
    return server.json_response({'extension_version': EXTENSION_VERSION,
                                 'pid': os.getpid()})


async def complete_onboarding(request):
    account = Account._api_retrieve(request.match_info['id'])
    account._complete_onboarding()
    return server.json_response(account._export())


def install():
    # State lives in memory: a restart starts from scratch.
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None

    accept_parameters(resources.PaymentIntent,
                      ('description', 'transfer_group'))
    accept_parameters(resources.Refund, ('reason',),
                      allowed={'reason': REFUND_REASONS})

    app = server.app
    app.middlewares.append(idempotency_middleware)
    app.on_response_prepare.append(add_request_id)
    for cls in (Account, Transfer):
        collection = '/v1/' + cls.object + 's'
        app.router.add_route('POST', collection,
                             server.api_create(cls, collection))
        app.router.add_route('GET', collection + '/{id}',
                             server.api_retrieve(cls, collection + '/{id}'))
    app.router.add_post('/v1/transfers/{id}/reversals', create_reversal)
    app.router.add_get('/_config/feria', extension_info)
    app.router.add_post('/_config/accounts/{id}/complete_onboarding',
                        complete_onboarding)
    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8420)
    args = parser.parse_args()

    app = install()
    family = socket.AF_INET6 if ':' in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))

    logger = logging.getLogger('aiohttp.access')
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())
    print('localstripe (Feria extension %s) on %s:%d, started %s'
          % (EXTENSION_VERSION, args.host, args.port,
             time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())), flush=True)
    web.run_app(app, sock=sock, access_log=logger, print=None)


if __name__ == '__main__':
    main()
