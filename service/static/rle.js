// COCO compressed RLE -> a binary mask, as pycocotools writes and reads it (maskApi.c: rleFrString, rleDecode).

/**
 * Parse a compressed counts string into run lengths (a port of pycocotools' rleFrString).
 * Each count is written 5 bits per character (offset by 48, bit 0x20 = "more follows", bit 0x10 of the last
 * chunk = negative); from the third count on it is stored as the difference to the count two places back.
 * Arithmetic instead of bit shifts keeps counts above 2^31 exact.
 */
export function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k); // sign-extend the last chunk
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/**
 * Decode to a row-major Uint8Array[height * width] (1 = object), ready for canvas ImageData.
 * Runs alternate background/object starting with background, and run down COLUMNS (Fortran order):
 * position p is row p % height, column floor(p / height).
 */
export function decodeRle(counts, height, width) {
  const mask = new Uint8Array(height * width);
  let p = 0;
  rleCounts(counts).forEach((run, i) => {
    if (i % 2 === 1) {
      for (let q = p; q < p + run; q += 1) mask[(q % height) * width + Math.floor(q / height)] = 1;
    }
    p += run;
  });
  return mask;
}

/** The row-major indices of a mask's set pixels: drawing touches only these, not the whole image. */
export function maskIndices(mask) {
  const indices = [];
  mask.forEach((v, i) => {
    if (v) indices.push(i);
  });
  return Uint32Array.from(indices);
}
