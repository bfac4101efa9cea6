// Signs an app's self-authentication token the way Portico's Node.js apps do, with the real
// `jsonwebtoken` package: ES256 over { appId, iss: appId, aud: 'serana', sub: 'AppAuth' }.
//
//   node sign.mjs --app-id fooApp --key key.pem [--expires-in 1h] [--audience serana]
//
// --app-id and --key may also come from APP_ID and APP_PRIVATE_KEY_FILE. Without overrides the
// token is exactly getRefrensToken's. Overrides, for tokens Portico must refuse:
//   --expires-in=SPAN   jsonwebtoken's expiresIn: '2d', '10m', or seconds; a negative number of
//                       seconds ('--expires-in=-60', with '=') gives a token that expired that
//                       long ago
//   --audience AUD      the aud claim instead of 'serana'
// The token is printed on stdout, followed by a newline.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import jwt from 'jsonwebtoken';

// The seed's sample, unchanged.
function getRefrensToken(appId, privateKey) {
  return jwt.sign({ appId, iss: appId, aud: 'serana', sub: 'AppAuth' }, privateKey,
                  { algorithm: 'ES256', expiresIn: '1h' });
}

// The same token with the overrides applied.
function getTokenWith(appId, privateKey, { expiresIn, audience }) {
  return jwt.sign({ appId, iss: appId, aud: audience ?? 'serana', sub: 'AppAuth' }, privateKey,
                  { algorithm: 'ES256', expiresIn: expiresIn ?? '1h' });
}

const { values } = parseArgs({
  options: {
    'app-id': { type: 'string' },
    key: { type: 'string' },
    'expires-in': { type: 'string' },
    audience: { type: 'string' },
  },
  allowPositionals: false,
});

const appId = values['app-id'] ?? process.env.APP_ID;
const keyFile = values.key ?? process.env.APP_PRIVATE_KEY_FILE;
if (!appId || !keyFile) {
  console.error('usage: node sign.mjs --app-id APP_ID --key PRIVATE_KEY.pem '
                + '[--expires-in SPAN] [--audience AUD]');
  process.exit(2);
}
const privateKey = readFileSync(keyFile, 'utf8');

// jsonwebtoken reads a number as seconds and a string as a timespan ('2d'); '-60' is a number.
let expiresIn = values['expires-in'];
if (expiresIn !== undefined && /^-?\d+$/.test(expiresIn)) {
  expiresIn = Number(expiresIn);
}

const overridden = expiresIn !== undefined || values.audience !== undefined;
const token = overridden
  ? getTokenWith(appId, privateKey, { expiresIn, audience: values.audience })
  : getRefrensToken(appId, privateKey);
process.stdout.write(token + '\n');
