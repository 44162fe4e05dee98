/* SimpleRNN's step in the exported page (rnn.py holds the equations): h' = tanh(gx + gh + b).
   The engine (rnnlm/generation/web/engine.js) calls cellStep once per layer and time step: F is its float arena;
   gx, gh and h are offsets into F (W_ih x and W_hh h without biases, G·H each, and h, H); rest holds the state
   after h (Float32Arrays of H); b = b_ih + b_hh, bih and bhh are Float64Arrays; H is the hidden size. */
function cellStep(F, gx, gh, h, rest, b, bih, bhh, H) {
  for (let i = 0; i < H; i++) F[h + i] = Math.tanh(F[gx + i] + F[gh + i] + b[i]);
}
