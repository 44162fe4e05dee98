/* The GRU's step in the exported page (gru.py holds the equations), rows r, z, n:
   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.  cellStep's arguments: see rnn.js. */
function cellStep(F, gx, gh, h, rest, b, bih, bhh, H) {
  for (let i = 0; i < H; i++) {
    const r = sigmoid(F[gx + i] + F[gh + i] + b[i]), u = sigmoid(F[gx + H + i] + F[gh + H + i] + b[H + i]);
    const n = Math.tanh(F[gx + 2 * H + i] + bih[2 * H + i] + r * (F[gh + 2 * H + i] + bhh[2 * H + i]));
    F[h + i] = (1 - u) * n + u * F[h + i];
  }
}
